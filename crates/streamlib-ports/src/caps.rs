//! Format capabilities ("caps"): what a port can produce or accept, beside its memory.
//!
//! A small algebra after GStreamer's caps and libavfilter's format lists: per kind a struct
//! of fields, each [`Any`](Field::Any), [`Fixed`](Field::Fixed) or a [`Range`](Field::Range)
//! (pixel formats: an ordered preference list). Negotiation intersects what an output can
//! produce with what an input accepts ([`Caps::intersect`]) and fixes one value per field
//! ([`Caps::fixate`]); both run at build, never per frame.
//!
//! ```
//! use streamlib_ports::{Caps, Field, PixelFormat, VideoCaps};
//! use streamlib_clock::Rational;
//!
//! let produced = Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 640, 480));
//! let accepted = Caps::Video(VideoCaps::any().with_formats(&[PixelFormat::Uyvy]));
//! assert!(produced.intersect(&accepted).is_none()); // needs a converter
//! let mixed = Caps::Video(VideoCaps::any().with_formats(&[PixelFormat::I420, PixelFormat::Rgba8]));
//! let agreed = produced.intersect(&mixed).unwrap().fixate(Rational::fps(30));
//! assert_eq!(agreed.to_string(), "video rgba8 640x480 30");
//! ```

use std::fmt;

use streamlib_clock::Rational;

use crate::{AlphaMode, PixelFormat, PortId};

/// A frame rate compared by value: 50/2 equals 25/1.
#[derive(Clone, Copy, Debug)]
pub struct FrameRate(pub Rational);

impl FrameRate {
    fn key(self, other: Self) -> (u64, u64) {
        (
            u64::from(self.0.num) * u64::from(other.0.den),
            u64::from(other.0.num) * u64::from(self.0.den),
        )
    }
}

impl PartialEq for FrameRate {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = self.key(*other);
        a == b
    }
}
impl Eq for FrameRate {}
impl PartialOrd for FrameRate {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for FrameRate {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (a, b) = self.key(*other);
        a.cmp(&b)
    }
}
impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One field of a caps set: any value, one value, or an inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field<T> {
    /// Any value.
    Any,
    /// Exactly this value.
    Fixed(T),
    /// Any value from `.0` to `.1`, inclusive.
    Range(T, T),
}

impl<T: Ord + Copy> Field<T> {
    /// The values in both, or `None` when they share none.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        use Field::*;
        match (*self, *other) {
            (Any, x) | (x, Any) => Some(x),
            (Fixed(a), Fixed(b)) => (a == b).then_some(Fixed(a)),
            (Fixed(a), Range(lo, hi)) | (Range(lo, hi), Fixed(a)) => {
                (lo <= a && a <= hi).then_some(Fixed(a))
            }
            (Range(a, b), Range(c, d)) => {
                let (lo, hi) = (a.max(c), b.min(d));
                match lo.cmp(&hi) {
                    std::cmp::Ordering::Less => Some(Range(lo, hi)),
                    std::cmp::Ordering::Equal => Some(Fixed(lo)),
                    std::cmp::Ordering::Greater => None,
                }
            }
        }
    }

    /// The one value, if fixed.
    pub fn fixed(&self) -> Option<T> {
        match *self {
            Field::Fixed(v) => Some(v),
            _ => None,
        }
    }

    /// One value: the fixed one, `hint` when allowed, else the range end nearest to `hint`.
    /// `Any` without a hint stays `Any`.
    pub fn fixate(&self, hint: Option<T>) -> Self {
        match (*self, hint) {
            (Field::Fixed(v), _) => Field::Fixed(v),
            (Field::Any, Some(h)) => Field::Fixed(h),
            (Field::Any, None) => Field::Any,
            // `max` last: a malformed range (lo > hi) fixes to `lo`, never panics.
            (Field::Range(lo, hi), Some(h)) => Field::Fixed(h.min(hi).max(lo)),
            (Field::Range(lo, _), None) => Field::Fixed(lo),
        }
    }

    /// Whether `value` is allowed.
    pub fn allows(&self, value: T) -> bool {
        self.intersect(&Field::Fixed(value)).is_some()
    }
}

fn show<T: fmt::Display>(field: &Field<T>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match field {
        Field::Any => f.write_str("*"),
        Field::Fixed(v) => write!(f, "{v}"),
        Field::Range(lo, hi) => write!(f, "[{lo}..{hi}]"),
    }
}

/// Pixel formats a port handles, in order of preference, or any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Formats {
    /// Any format.
    Any,
    /// These formats, the most preferred first (never empty once intersected).
    List(Vec<PixelFormat>),
}

impl Formats {
    /// The formats in both, in `self`'s order of preference.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        match (self, other) {
            (Formats::Any, Formats::List(l)) | (Formats::List(l), Formats::Any) => {
                (!l.is_empty()).then(|| Formats::List(l.clone()))
            }
            (Formats::Any, Formats::Any) => Some(Formats::Any),
            (Formats::List(a), Formats::List(b)) => {
                let both: Vec<_> = a.iter().copied().filter(|f| b.contains(f)).collect();
                (!both.is_empty()).then_some(Formats::List(both))
            }
        }
    }

    /// Whether `format` is allowed.
    pub fn allows(&self, format: PixelFormat) -> bool {
        match self {
            Formats::Any => true,
            Formats::List(list) => list.contains(&format),
        }
    }

    /// The most preferred format, if the list is not `Any`.
    pub fn preferred(&self) -> Option<PixelFormat> {
        match self {
            Formats::Any => None,
            Formats::List(list) => list.first().copied(),
        }
    }
}

impl fmt::Display for Formats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Formats::Any => f.write_str("*"),
            Formats::List(list) => {
                for (i, format) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str("|")?;
                    }
                    f.write_str(format.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// What a video port produces or accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VideoCaps {
    /// Pixel formats, most preferred first.
    pub formats: Formats,
    /// Width in pixels.
    pub width: Field<u32>,
    /// Height in pixels.
    pub height: Field<u32>,
    /// Frame rate. `Any` on a source means "at the clock's rate".
    pub rate: Field<FrameRate>,
    /// How colour relates to alpha; `None` for any.
    pub alpha: Option<AlphaMode>,
}

impl VideoCaps {
    /// Anything video.
    pub fn any() -> Self {
        Self {
            formats: Formats::Any,
            width: Field::Any,
            height: Field::Any,
            rate: Field::Any,
            alpha: None,
        }
    }

    /// One format at one size, any rate.
    pub fn fixed(format: PixelFormat, width: u32, height: u32) -> Self {
        Self::any().with_formats(&[format]).with_size(width, height)
    }

    /// The same caps limited to `formats` (most preferred first).
    pub fn with_formats(mut self, formats: &[PixelFormat]) -> Self {
        self.formats = Formats::List(formats.to_vec());
        self
    }

    /// The same caps at one size.
    pub fn with_size(mut self, width: u32, height: u32) -> Self {
        self.width = Field::Fixed(width);
        self.height = Field::Fixed(height);
        self
    }

    /// The same caps at one frame rate.
    pub fn with_rate(mut self, rate: Rational) -> Self {
        self.rate = Field::Fixed(FrameRate(rate));
        self
    }

    /// The same caps with one alpha mode.
    pub fn with_alpha(mut self, alpha: AlphaMode) -> Self {
        self.alpha = Some(alpha);
        self
    }

    /// The caps both allow, or `None` (with the first field that disagrees, for messages).
    pub fn intersect(&self, other: &Self) -> Result<Self, &'static str> {
        Ok(Self {
            formats: self.formats.intersect(&other.formats).ok_or("format")?,
            width: self.width.intersect(&other.width).ok_or("size")?,
            height: self.height.intersect(&other.height).ok_or("size")?,
            rate: self.rate.intersect(&other.rate).ok_or("rate")?,
            alpha: match (self.alpha, other.alpha) {
                (Some(a), Some(b)) if a != b => return Err("alpha"),
                (a, b) => a.or(b),
            },
        })
    }

    /// The fixed form, when every field is fixed (alpha defaults to straight).
    pub fn info(&self) -> Option<VideoInfo> {
        Some(VideoInfo {
            format: match &self.formats {
                Formats::List(list) if list.len() == 1 => list[0],
                _ => return None,
            },
            width: self.width.fixed()?,
            height: self.height.fixed()?,
            rate: self.rate.fixed().map(|r| r.0),
            alpha: self.alpha.unwrap_or_default(),
        })
    }
}

impl fmt::Display for VideoCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "video {} ", self.formats)?;
        match (self.width, self.height) {
            (Field::Any, Field::Any) => f.write_str("any size")?,
            (w, h) => {
                show(&w, f)?;
                f.write_str("x")?;
                show(&h, f)?;
            }
        }
        match self.rate {
            Field::Any => {}
            rate => {
                f.write_str(" ")?;
                show(&rate, f)?;
            }
        }
        match self.alpha {
            Some(AlphaMode::Premultiplied) => f.write_str(" premultiplied"),
            _ => Ok(()),
        }
    }
}

/// Fixed video caps: what a frame on a negotiated link looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VideoInfo {
    /// Pixel format.
    pub format: PixelFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rate; `None` when the graph never fixed one (no clock rate was given to
    /// [`Caps::fixate`]).
    pub rate: Option<Rational>,
    /// Alpha mode.
    pub alpha: AlphaMode,
}

/// What an audio port produces or accepts. Samples are always interleaved `f32`
/// ([`crate::AudioBuffer`]); the layout follows the channel count (1 mono, 2 stereo, …).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AudioCaps {
    /// Sample rate in Hz.
    pub rate: Field<u32>,
    /// Channel count.
    pub channels: Field<u32>,
}

impl AudioCaps {
    /// Anything audio.
    pub fn any() -> Self {
        Self {
            rate: Field::Any,
            channels: Field::Any,
        }
    }

    /// One rate and channel count.
    pub fn fixed(rate: u32, channels: u32) -> Self {
        Self {
            rate: Field::Fixed(rate),
            channels: Field::Fixed(channels),
        }
    }

    /// The caps both allow, or the first field that disagrees.
    pub fn intersect(&self, other: &Self) -> Result<Self, &'static str> {
        Ok(Self {
            rate: self.rate.intersect(&other.rate).ok_or("sample rate")?,
            channels: self.channels.intersect(&other.channels).ok_or("channels")?,
        })
    }
}

impl fmt::Display for AudioCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("audio ")?;
        show(&self.rate, f)?;
        f.write_str("Hz ")?;
        show(&self.channels, f)?;
        f.write_str("ch")
    }
}

/// The format capabilities of a port.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Caps {
    /// Not declared: anything, and nothing is negotiated (data ports, handlers written
    /// before caps existed).
    #[default]
    Any,
    /// Video.
    Video(VideoCaps),
    /// Audio.
    Audio(AudioCaps),
}

/// Why two caps sets share nothing: the first field that disagrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Video on one side, audio on the other.
    Kind,
    /// A field of the same kind: `"format"`, `"size"`, `"rate"`, `"alpha"`, `"sample rate"`,
    /// `"channels"`.
    Field(&'static str),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Kind => f.write_str("kind"),
            Mismatch::Field(name) => f.write_str(name),
        }
    }
}

impl Caps {
    /// Video caps of any format, size and rate.
    pub fn video() -> Self {
        Caps::Video(VideoCaps::any())
    }

    /// Audio caps of any rate and channel count.
    pub fn audio() -> Self {
        Caps::Audio(AudioCaps::any())
    }

    /// What both allow, or why nothing.
    pub fn try_intersect(&self, other: &Self) -> Result<Self, Mismatch> {
        match (self, other) {
            (Caps::Any, x) | (x, Caps::Any) => Ok(x.clone()),
            (Caps::Video(a), Caps::Video(b)) => {
                a.intersect(b).map(Caps::Video).map_err(Mismatch::Field)
            }
            (Caps::Audio(a), Caps::Audio(b)) => {
                a.intersect(b).map(Caps::Audio).map_err(Mismatch::Field)
            }
            _ => Err(Mismatch::Kind),
        }
    }

    /// What both allow, in `self`'s order of preference; `None` when they share nothing.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        self.try_intersect(other).ok()
    }

    /// One value per field: the most preferred format, the lower end of a range, and for a
    /// video rate left open, `clock_rate` (the runtime's). Fields that are `Any` with no
    /// such default (an undeclared size) stay open.
    pub fn fixate(&self, clock_rate: Rational) -> Self {
        match self {
            Caps::Any => Caps::Any,
            Caps::Video(v) => Caps::Video(VideoCaps {
                formats: match &v.formats {
                    Formats::List(list) if !list.is_empty() => Formats::List(vec![list[0]]),
                    other => other.clone(),
                },
                width: v.width.fixate(None),
                height: v.height.fixate(None),
                rate: v.rate.fixate(Some(FrameRate(clock_rate))),
                alpha: v.alpha,
            }),
            Caps::Audio(a) => Caps::Audio(AudioCaps {
                rate: a.rate.fixate(None),
                channels: a.channels.fixate(None),
            }),
        }
    }

    /// Whether every field has one value.
    pub fn is_fixed(&self) -> bool {
        match self {
            Caps::Any => false,
            Caps::Video(v) => v.info().is_some() && v.rate.fixed().is_some(),
            Caps::Audio(a) => a.rate.fixed().is_some() && a.channels.fixed().is_some(),
        }
    }

    /// The fixed video form, if this is video with format and size fixed.
    pub fn video_info(&self) -> Option<VideoInfo> {
        match self {
            Caps::Video(v) => v.info(),
            _ => None,
        }
    }

    /// The video fields, if video.
    pub fn as_video(&self) -> Option<&VideoCaps> {
        match self {
            Caps::Video(v) => Some(v),
            _ => None,
        }
    }

    /// The audio fields, if audio.
    pub fn as_audio(&self) -> Option<&AudioCaps> {
        match self {
            Caps::Audio(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for Caps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caps::Any => f.write_str("any"),
            Caps::Video(v) => fmt::Display::fmt(v, f),
            Caps::Audio(a) => fmt::Display::fmt(a, f),
        }
    }
}

/// Which fields of an output's caps follow the caps negotiated on one of its handler's
/// inputs (GStreamer's `transform_caps`): blur follows all of them, a format converter
/// size and rate, a scaler format and rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Follow {
    /// The pixel format (audio: nothing).
    pub format: bool,
    /// Width and height (audio: channels).
    pub size: bool,
    /// Frame rate (audio: sample rate).
    pub rate: bool,
}

impl Follow {
    /// Every field: a pass-through transform.
    pub const ALL: Follow = Follow {
        format: true,
        size: true,
        rate: true,
    };
    /// Size and rate: a pixel-format converter.
    pub const SIZE_RATE: Follow = Follow {
        format: false,
        size: true,
        rate: true,
    };
    /// Format and rate: a scaler.
    pub const FORMAT_RATE: Follow = Follow {
        format: true,
        size: false,
        rate: true,
    };
    /// Format and size: a rate adapter.
    pub const FORMAT_SIZE: Follow = Follow {
        format: true,
        size: true,
        rate: false,
    };
    /// Only the rate: a handler that makes its own frames at its input's pace.
    pub const RATE: Follow = Follow {
        format: false,
        size: false,
        rate: true,
    };

    /// The caps an output following `input` (fixed caps negotiated on the input) produces:
    /// `template` with the followed fields taken from `input`. `Err` names the field where
    /// the template refuses what the input carries.
    pub fn apply(&self, template: &Caps, input: &Caps) -> Result<Caps, Mismatch> {
        match (template, input) {
            (_, Caps::Any) => Ok(template.clone()),
            (Caps::Any, _) if *self == Follow::ALL => Ok(input.clone()),
            (Caps::Any, _) => Ok(Caps::Any),
            (Caps::Video(t), Caps::Video(i)) => {
                let mut out = t.clone();
                if self.format {
                    out.formats = t
                        .formats
                        .intersect(&i.formats)
                        .ok_or(Mismatch::Field("format"))?;
                    out.alpha = i.alpha.or(t.alpha);
                }
                if self.size {
                    out.width = t.width.intersect(&i.width).ok_or(Mismatch::Field("size"))?;
                    out.height = t
                        .height
                        .intersect(&i.height)
                        .ok_or(Mismatch::Field("size"))?;
                }
                if self.rate {
                    out.rate = t.rate.intersect(&i.rate).ok_or(Mismatch::Field("rate"))?;
                }
                Ok(Caps::Video(out))
            }
            (Caps::Audio(t), Caps::Audio(i)) => {
                let mut out = t.clone();
                if self.size {
                    out.channels = t
                        .channels
                        .intersect(&i.channels)
                        .ok_or(Mismatch::Field("channels"))?;
                }
                if self.rate {
                    out.rate = t
                        .rate
                        .intersect(&i.rate)
                        .ok_or(Mismatch::Field("sample rate"))?;
                }
                Ok(Caps::Audio(out))
            }
            _ => Err(Mismatch::Kind),
        }
    }
}

/// A port's format state: its template, what its output follows, and what was negotiated.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapsState {
    pub(crate) template: Caps,
    pub(crate) follows: Option<(PortId, Follow)>,
    pub(crate) negotiated: Option<Caps>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field() -> impl Strategy<Value = Field<u32>> {
        prop_oneof![
            Just(Field::Any),
            (1u32..8).prop_map(Field::Fixed),
            (1u32..8, 0u32..4).prop_map(|(a, d)| Field::Range(a, a + d)),
        ]
    }

    fn formats() -> impl Strategy<Value = Formats> {
        prop_oneof![
            Just(Formats::Any),
            proptest::sample::subsequence(PixelFormat::ALL.to_vec(), 1..4)
                .prop_shuffle()
                .prop_map(Formats::List),
        ]
    }

    fn video() -> impl Strategy<Value = Caps> {
        (formats(), field(), field(), field()).prop_map(|(formats, width, height, rate)| {
            Caps::Video(VideoCaps {
                formats,
                width,
                height,
                rate: match rate {
                    Field::Any => Field::Any,
                    Field::Fixed(r) => Field::Fixed(FrameRate(Rational::fps(r))),
                    Field::Range(a, b) => {
                        Field::Range(FrameRate(Rational::fps(a)), FrameRate(Rational::fps(b)))
                    }
                },
                alpha: None,
            })
        })
    }

    /// Same values allowed, ignoring the order of preference.
    fn same_set(a: &Option<Caps>, b: &Option<Caps>) -> bool {
        let norm = |c: &Option<Caps>| {
            c.clone().map(|c| match c {
                Caps::Video(mut v) => {
                    if let Formats::List(list) = &mut v.formats {
                        list.sort_by_key(|f| f.as_str());
                    }
                    Caps::Video(v)
                }
                other => other,
            })
        };
        norm(a) == norm(b)
    }

    proptest! {
        #[test]
        fn intersection_is_commutative(a in video(), b in video()) {
            prop_assert!(same_set(&a.intersect(&b), &b.intersect(&a)));
        }

        #[test]
        fn intersection_is_associative(a in video(), b in video(), c in video()) {
            let left = a.intersect(&b).and_then(|ab| ab.intersect(&c));
            let right = b.intersect(&c).and_then(|bc| a.intersect(&bc));
            prop_assert!(same_set(&left, &right));
        }

        #[test]
        fn fixate_is_a_subset(a in video()) {
            let fixed = a.fixate(Rational::fps(5));
            prop_assert_eq!(fixed.intersect(&a), Some(fixed.clone()));
        }

        #[test]
        fn fixed_caps_intersect_to_themselves(a in video()) {
            let fixed = a.fixate(Rational::fps(5));
            prop_assert_eq!(fixed.intersect(&fixed), Some(fixed));
        }
    }

    #[test]
    fn rates_compare_by_value() {
        let a = Field::Fixed(FrameRate(Rational { num: 50, den: 2 }));
        let b = Field::Fixed(FrameRate(Rational::fps(25)));
        assert!(a.intersect(&b).is_some());
        let ntsc = Field::Fixed(FrameRate(Rational::FPS_29_97));
        assert!(
            ntsc.intersect(&Field::Fixed(FrameRate(Rational::fps(30))))
                .is_none()
        );
    }

    #[test]
    fn prints_one_line() {
        let caps = Caps::Video(
            VideoCaps::any()
                .with_formats(&[PixelFormat::Rgba8, PixelFormat::I420])
                .with_size(640, 480)
                .with_rate(Rational::FPS_29_97),
        );
        assert_eq!(caps.to_string(), "video rgba8|i420 640x480 30000/1001");
        assert_eq!(Caps::video().to_string(), "video * any size");
        assert_eq!(
            Caps::Audio(AudioCaps::fixed(48_000, 2)).to_string(),
            "audio 48000Hz 2ch"
        );
    }

    #[test]
    fn video_and_audio_never_meet() {
        assert_eq!(
            Caps::video().try_intersect(&Caps::audio()),
            Err(Mismatch::Kind)
        );
    }

    #[test]
    fn follow_takes_the_followed_fields() {
        let input =
            Caps::Video(VideoCaps::fixed(PixelFormat::Rgba8, 64, 32).with_rate(Rational::fps(25)));
        let convert = Caps::Video(VideoCaps::any().with_formats(&[PixelFormat::Uyvy]));
        let out = Follow::SIZE_RATE.apply(&convert, &input).unwrap();
        assert_eq!(out.to_string(), "video uyvy 64x32 25");
        let blur =
            Caps::Video(VideoCaps::any().with_formats(&[PixelFormat::Rgba8, PixelFormat::Bgra8]));
        assert_eq!(
            Follow::ALL.apply(&blur, &input).unwrap().to_string(),
            "video rgba8 64x32 25"
        );
        let gray = Caps::Video(VideoCaps::any().with_formats(&[PixelFormat::Gray8]));
        assert_eq!(
            Follow::ALL.apply(&gray, &input),
            Err(Mismatch::Field("format"))
        );
    }
}
