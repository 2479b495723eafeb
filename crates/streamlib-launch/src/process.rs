//! The `@process` dispatcher: an element's handler runs in a child process.
//! (Being built for issue 17.)
