//! A real browser for tests: Debian's Chromium, headless, driven through chromedriver (being written).
