//! `AudioResample` (`audioresample`): sample-rate conversion with rubato, and the drift-following asynchronous mode.
