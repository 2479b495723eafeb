//! What `audiosink` and `audiosrc` do alike with their device: find it again when opening,
//! start its stream, name it in errors, and give it up when its callbacks say it is lost.

use cpal::traits::StreamTrait;

use super::select::{self, Chosen, Direction};
use super::{DeviceError, Health};

/// A handler's device (`None` when driven by hand, without one) and its open stream.
pub(super) struct DeviceStream {
    handler: &'static str,
    direction: Direction,
    chosen: Option<Chosen>,
    stream: Option<cpal::Stream>,
}

impl DeviceStream {
    pub(super) fn new(handler: &'static str, direction: Direction, chosen: Option<Chosen>) -> Self {
        Self {
            handler,
            direction,
            chosen,
            stream: None,
        }
    }

    /// Whether there is a device (not driven by hand).
    pub(super) fn has_device(&self) -> bool {
        self.chosen.is_some()
    }

    /// The device chosen, as `id (description)`.
    pub(super) fn chosen(&self) -> Option<String> {
        self.chosen.as_ref().map(ToString::to_string)
    }

    /// The device as errors name it.
    fn name(&self) -> String {
        self.chosen.as_ref().map_or_else(
            || match self.direction {
                Direction::Output => "(pulled)".to_owned(),
                Direction::Input => "(pushed)".to_owned(),
            },
            ToString::to_string,
        )
    }

    /// [`DeviceError::Open`] for this handler and device.
    pub(super) fn open_error(&self, reason: impl std::fmt::Display) -> DeviceError {
        DeviceError::Open {
            handler: self.handler,
            device: self.name(),
            reason: reason.to_string(),
        }
    }

    /// Closes any open stream and finds the device again (after a restart the host lists it
    /// anew); `None` without a device. A device the host no longer lists is an error listing
    /// those it does.
    pub(super) fn find(&mut self) -> Result<Option<(cpal::Device, Chosen)>, DeviceError> {
        let Some(chosen) = self.chosen.clone() else {
            return Ok(None);
        };
        self.stream = None;
        let device = select::reopen(&chosen).ok_or_else(|| {
            self.open_error(format!(
                "the host no longer lists it; {} devices: {}",
                match self.direction {
                    Direction::Output => "output",
                    Direction::Input => "input",
                },
                select::available(self.direction).join(", ")
            ))
        })?;
        Ok(Some((device, chosen)))
    }

    /// Plays `built` and keeps it open.
    pub(super) fn start(
        &mut self,
        built: Result<cpal::Stream, cpal::Error>,
    ) -> Result<(), DeviceError> {
        let stream = built.map_err(|e| self.open_error(e))?;
        stream.play().map_err(|e| self.open_error(e))?;
        self.stream = Some(stream);
        Ok(())
    }

    /// Closes the stream (without a device there is none, and nothing to close).
    pub(super) fn close(&mut self) {
        self.stream = None;
    }

    /// [`DeviceError::Lost`] if a stream is open and `health` says to give it up.
    pub(super) fn check(&self, health: Option<&Health>) -> Result<(), DeviceError> {
        let (Some(_), Some(health)) = (&self.stream, health) else {
            return Ok(());
        };
        match health.check() {
            None => Ok(()),
            Some(reason) => Err(DeviceError::Lost {
                handler: self.handler,
                device: self.name(),
                reason,
            }),
        }
    }
}
