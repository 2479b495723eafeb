use std::sync::Arc;

/// A generic message: a topic and bytes (text, JSON, metadata, control values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataMessage {
    /// What the payload is about, e.g. `"drawing/vars"`.
    pub topic: Arc<str>,
    /// The payload.
    pub payload: Arc<[u8]>,
    /// When it was produced, ns.
    pub timestamp_ns: u64,
}

impl DataMessage {
    /// A message with a byte payload.
    pub fn new(
        topic: impl Into<Arc<str>>,
        payload: impl Into<Arc<[u8]>>,
        timestamp_ns: u64,
    ) -> Self {
        Self {
            topic: topic.into(),
            payload: payload.into(),
            timestamp_ns,
        }
    }

    /// A message with a UTF-8 payload.
    pub fn text(topic: impl Into<Arc<str>>, text: &str, timestamp_ns: u64) -> Self {
        Self::new(topic, text.as_bytes(), timestamp_ns)
    }

    /// The payload as text, if it is UTF-8.
    pub fn as_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

/// A keyboard key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Escape.
    Escape,
    /// Enter / Return.
    Enter,
    /// Space bar.
    Space,
    /// Tab.
    Tab,
    /// Backspace.
    Backspace,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// Function key F1–F24.
    F(u8),
    /// A key without a name here; the window system's code.
    Other(u32),
}

/// Whether a key or button went down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Pressed.
    Pressed,
    /// Released.
    Released,
}

/// Modifier keys held during an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Modifiers {
    /// Shift.
    pub shift: bool,
    /// Control.
    pub ctrl: bool,
    /// Alt / Option.
    pub alt: bool,
    /// Super / Command.
    pub meta: bool,
}

/// A keyboard event from a display window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyEvent {
    /// The key.
    pub key: Key,
    /// Down or up.
    pub state: KeyState,
    /// Modifiers held.
    pub modifiers: Modifiers,
    /// When it happened, ns.
    pub timestamp_ns: u64,
}

/// A mouse button.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MouseButton {
    /// Left.
    Left,
    /// Right.
    Right,
    /// Middle / wheel.
    Middle,
}

/// What the mouse did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MouseEventKind {
    /// Moved to (`x`, `y`).
    Moved,
    /// A button went down.
    Pressed(MouseButton),
    /// A button went up.
    Released(MouseButton),
    /// The wheel turned.
    Scrolled {
        /// Horizontal amount.
        dx: f32,
        /// Vertical amount.
        dy: f32,
    },
}

/// A mouse event from a display window, in frame pixel coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MouseEvent {
    /// What happened.
    pub kind: MouseEventKind,
    /// Horizontal position in frame pixels.
    pub x: f32,
    /// Vertical position in frame pixels.
    pub y: f32,
    /// When it happened, ns.
    pub timestamp_ns: u64,
}
