//! `audiosink` and `audiosrc`: real sound devices through cpal.
