//! HTTP Live Streaming for streamlib (being written).
