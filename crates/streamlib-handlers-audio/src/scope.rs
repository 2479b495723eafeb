//! `spectrum` and `audioscope`: audio in, video out (bars, waveform, level meters).
