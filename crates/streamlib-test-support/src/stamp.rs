//! Frame stamps (being written).
