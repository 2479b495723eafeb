//! Turning minifb's key and mouse state into streamlib events.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use minifb::Key as MfKey;
use streamlib_ports::{
    Key, KeyEvent, KeyState, Modifiers, MouseButton, MouseEvent, MouseEventKind,
};

use super::Shared;

/// Slots for every minifb key (`Key` is `repr(u8)` with `Count` last).
const KEY_SLOTS: usize = MfKey::Count as usize + 1;

/// A minifb key as a streamlib key. Letters become lower-case characters (shift is reported in
/// the modifiers), digits and US-layout punctuation their unshifted characters.
pub(super) fn map_key(key: MfKey) -> Key {
    use MfKey as K;
    let ch = |c| Key::Char(c);
    match key {
        K::Key0 | K::NumPad0 => ch('0'),
        K::Key1 | K::NumPad1 => ch('1'),
        K::Key2 | K::NumPad2 => ch('2'),
        K::Key3 | K::NumPad3 => ch('3'),
        K::Key4 | K::NumPad4 => ch('4'),
        K::Key5 | K::NumPad5 => ch('5'),
        K::Key6 | K::NumPad6 => ch('6'),
        K::Key7 | K::NumPad7 => ch('7'),
        K::Key8 | K::NumPad8 => ch('8'),
        K::Key9 | K::NumPad9 => ch('9'),
        K::A => ch('a'),
        K::B => ch('b'),
        K::C => ch('c'),
        K::D => ch('d'),
        K::E => ch('e'),
        K::F => ch('f'),
        K::G => ch('g'),
        K::H => ch('h'),
        K::I => ch('i'),
        K::J => ch('j'),
        K::K => ch('k'),
        K::L => ch('l'),
        K::M => ch('m'),
        K::N => ch('n'),
        K::O => ch('o'),
        K::P => ch('p'),
        K::Q => ch('q'),
        K::R => ch('r'),
        K::S => ch('s'),
        K::T => ch('t'),
        K::U => ch('u'),
        K::V => ch('v'),
        K::W => ch('w'),
        K::X => ch('x'),
        K::Y => ch('y'),
        K::Z => ch('z'),
        K::Apostrophe => ch('\''),
        K::Backquote => ch('`'),
        K::Backslash => ch('\\'),
        K::Comma => ch(','),
        K::Equal => ch('='),
        K::LeftBracket => ch('['),
        K::Minus | K::NumPadMinus => ch('-'),
        K::Period | K::NumPadDot => ch('.'),
        K::RightBracket => ch(']'),
        K::Semicolon => ch(';'),
        K::Slash | K::NumPadSlash => ch('/'),
        K::NumPadAsterisk => ch('*'),
        K::NumPadPlus => ch('+'),
        K::F1 => Key::F(1),
        K::F2 => Key::F(2),
        K::F3 => Key::F(3),
        K::F4 => Key::F(4),
        K::F5 => Key::F(5),
        K::F6 => Key::F(6),
        K::F7 => Key::F(7),
        K::F8 => Key::F(8),
        K::F9 => Key::F(9),
        K::F10 => Key::F(10),
        K::F11 => Key::F(11),
        K::F12 => Key::F(12),
        K::F13 => Key::F(13),
        K::F14 => Key::F(14),
        K::F15 => Key::F(15),
        K::Up => Key::Up,
        K::Down => Key::Down,
        K::Left => Key::Left,
        K::Right => Key::Right,
        K::Escape => Key::Escape,
        K::Enter | K::NumPadEnter => Key::Enter,
        K::Space => Key::Space,
        K::Tab => Key::Tab,
        K::Backspace => Key::Backspace,
        other => Key::Other(u32::from(other as u8)),
    }
}

/// Tracks which keys are down, to drop auto-repeats and report modifiers.
pub(super) struct KeyTracker {
    down: [bool; KEY_SLOTS],
}

impl Default for KeyTracker {
    fn default() -> Self {
        Self {
            down: [false; KEY_SLOTS],
        }
    }
}

impl KeyTracker {
    /// The event for a key going down or up; `None` for an auto-repeat (already down).
    pub(super) fn event(&mut self, key: MfKey, down: bool) -> Option<KeyEvent> {
        let slot = self.down.get_mut(key as usize)?;
        if *slot == down {
            return None;
        }
        *slot = down;
        Some(KeyEvent {
            key: map_key(key),
            state: if down {
                KeyState::Pressed
            } else {
                KeyState::Released
            },
            modifiers: self.modifiers(),
            timestamp_ns: 0,
        })
    }

    fn is_down(&self, key: MfKey) -> bool {
        self.down.get(key as usize).copied().unwrap_or(false)
    }

    fn modifiers(&self) -> Modifiers {
        let either = |a, b| self.is_down(a) || self.is_down(b);
        Modifiers {
            shift: either(MfKey::LeftShift, MfKey::RightShift),
            ctrl: either(MfKey::LeftCtrl, MfKey::RightCtrl),
            alt: either(MfKey::LeftAlt, MfKey::RightAlt),
            meta: either(MfKey::LeftSuper, MfKey::RightSuper),
        }
    }
}

/// Queues a key event for `process`; Esc also raises the stop flag.
pub(super) fn deliver_key(shared: &Shared, event: KeyEvent) {
    if event.key == Key::Escape && event.state == KeyState::Pressed {
        shared.escape.store(true, Ordering::Release);
    }
    shared.keys.push(event);
}

/// minifb's key callback: sees every press and release in order, as the window processes them.
pub(super) struct KeyCallback {
    pub(super) shared: Arc<Shared>,
    pub(super) tracker: KeyTracker,
}

impl minifb::InputCallback for KeyCallback {
    fn add_char(&mut self, _uni_char: u32) {}

    fn set_key_state(&mut self, key: MfKey, state: bool) {
        if let Some(event) = self.tracker.event(key, state) {
            deliver_key(&self.shared, event);
        }
    }
}

/// The mouse state the window reports on one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct MouseState {
    /// Pointer position in frame pixels, if it is over the image.
    pub(super) position: Option<(f32, f32)>,
    /// Left, right, middle.
    pub(super) buttons: [bool; 3],
    /// Wheel movement since the last poll.
    pub(super) scroll: Option<(f32, f32)>,
}

const BUTTONS: [MouseButton; 3] = [MouseButton::Left, MouseButton::Right, MouseButton::Middle];

/// Turns successive mouse states into events.
#[derive(Debug, Default)]
pub(super) struct MouseTracker {
    last: Option<(f32, f32)>,
    buttons: [bool; 3],
}

impl MouseTracker {
    /// Calls `emit` for each change since the last poll: a move, button edges, a scroll.
    pub(super) fn poll(&mut self, state: MouseState, mut emit: impl FnMut(MouseEvent)) {
        let mut event = |kind, (x, y)| {
            emit(MouseEvent {
                kind,
                x,
                y,
                timestamp_ns: 0,
            });
        };
        if let Some(pos) = state.position
            && self.last != Some(pos)
        {
            self.last = Some(pos);
            event(MouseEventKind::Moved, pos);
        }
        let here = self.last.unwrap_or_default();
        for ((was, &now), button) in self.buttons.iter_mut().zip(&state.buttons).zip(BUTTONS) {
            if *was != now {
                *was = now;
                let kind = if now {
                    MouseEventKind::Pressed(button)
                } else {
                    MouseEventKind::Released(button)
                };
                event(kind, here);
            }
        }
        if let Some((dx, dy)) = state.scroll {
            event(MouseEventKind::Scrolled { dx, dy }, here);
        }
    }
}

/// Maps a window pixel position to frame pixels (the window stretches the frame over its
/// whole area).
pub(super) fn window_to_frame(
    (x, y): (f32, f32),
    (window_w, window_h): (usize, usize),
    (frame_w, frame_h): (usize, usize),
) -> Option<(f32, f32)> {
    if window_w == 0 || window_h == 0 || x < 0.0 || y < 0.0 {
        return None;
    }
    let fx = x * frame_w as f32 / window_w as f32;
    let fy = y * frame_h as f32 / window_h as f32;
    (fx < frame_w as f32 && fy < frame_h as f32).then_some((fx, fy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_streamlib_keys() {
        assert_eq!(map_key(MfKey::A), Key::Char('a'));
        assert_eq!(map_key(MfKey::Z), Key::Char('z'));
        assert_eq!(map_key(MfKey::Key0), Key::Char('0'));
        assert_eq!(map_key(MfKey::Key9), Key::Char('9'));
        assert_eq!(map_key(MfKey::NumPad7), Key::Char('7'));
        assert_eq!(map_key(MfKey::Escape), Key::Escape);
        assert_eq!(map_key(MfKey::Enter), Key::Enter);
        assert_eq!(map_key(MfKey::Space), Key::Space);
        assert_eq!(map_key(MfKey::Tab), Key::Tab);
        assert_eq!(map_key(MfKey::Backspace), Key::Backspace);
        assert_eq!(map_key(MfKey::Up), Key::Up);
        assert_eq!(map_key(MfKey::Left), Key::Left);
        assert_eq!(map_key(MfKey::F1), Key::F(1));
        assert_eq!(map_key(MfKey::F12), Key::F(12));
        assert_eq!(map_key(MfKey::Home), Key::Other(MfKey::Home as u32));
        assert_eq!(
            map_key(MfKey::LeftShift),
            Key::Other(MfKey::LeftShift as u32)
        );
    }

    #[test]
    fn tracker_drops_repeats_and_reports_modifiers() {
        let mut t = KeyTracker::default();
        assert!(t.event(MfKey::RightCtrl, true).is_some());
        let e = t.event(MfKey::C, true).unwrap_or_else(|| panic!("press"));
        assert!(e.modifiers.ctrl && !e.modifiers.shift);
        assert_eq!(e.state, KeyState::Pressed);
        assert!(t.event(MfKey::C, true).is_none(), "auto-repeat");
        let e = t
            .event(MfKey::C, false)
            .unwrap_or_else(|| panic!("release"));
        assert_eq!(e.state, KeyState::Released);
        assert!(t.event(MfKey::C, false).is_none());
    }

    #[test]
    fn mouse_tracker_emits_edges() {
        let mut t = MouseTracker::default();
        let mut seen = Vec::new();
        let mut poll = |state| t.poll(state, |e| seen.push((e.kind, e.x, e.y)));
        poll(MouseState {
            position: Some((3.0, 4.0)),
            ..MouseState::default()
        });
        poll(MouseState {
            position: Some((3.0, 4.0)),
            buttons: [true, false, false],
            scroll: Some((0.0, -1.0)),
        });
        poll(MouseState {
            position: None,
            ..MouseState::default()
        });
        assert_eq!(
            seen,
            [
                (MouseEventKind::Moved, 3.0, 4.0),
                (MouseEventKind::Pressed(MouseButton::Left), 3.0, 4.0),
                (MouseEventKind::Scrolled { dx: 0.0, dy: -1.0 }, 3.0, 4.0),
                (MouseEventKind::Released(MouseButton::Left), 3.0, 4.0),
            ]
        );
    }

    #[test]
    fn window_positions_scale_to_frame_pixels() {
        assert_eq!(
            window_to_frame((100.0, 50.0), (1280, 960), (640, 480)),
            Some((50.0, 25.0))
        );
        assert_eq!(
            window_to_frame((10.0, 10.0), (640, 480), (640, 480)),
            Some((10.0, 10.0))
        );
        assert_eq!(window_to_frame((640.0, 10.0), (640, 480), (640, 480)), None);
        assert_eq!(window_to_frame((-1.0, 10.0), (640, 480), (640, 480)), None);
    }
}
