//! Finding a sound device by name: the ALSA PCM id (`pulse`, `default`, `hw:CARD=0,DEV=0`)
//! or a part of its description (`PulseAudio`), case-insensitive.

use cpal::DeviceDirection;
use cpal::traits::{DeviceTrait, HostTrait};

use crate::AudioError;

/// Which way a device is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Output,
    Input,
}

/// A device found by name: enough to find it again after a restart.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    /// The host's id for it (the ALSA PCM name).
    pub(crate) id: String,
    /// Its description's name, for messages.
    pub(crate) name: String,
}

impl std::fmt::Display for Chosen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.id == self.name {
            f.write_str(&self.id)
        } else {
            write!(f, "{} ({})", self.id, self.name)
        }
    }
}

fn id_of(device: &cpal::Device) -> String {
    device.id().map(|id| id.id().to_owned()).unwrap_or_default()
}

fn name_of(device: &cpal::Device) -> String {
    device
        .description()
        .map(|d| d.name().to_owned())
        .unwrap_or_else(|_| id_of(device))
}

fn usable(device: &cpal::Device, direction: Direction) -> bool {
    let Ok(desc) = device.description() else {
        return true;
    };
    match direction {
        _ if desc.direction() == DeviceDirection::Unknown => true,
        Direction::Output => desc.supports_output(),
        Direction::Input => desc.supports_input(),
    }
}

/// Every device the host lists for `direction`, as `id (name)`.
pub(crate) fn available(direction: Direction) -> Vec<String> {
    let host = cpal::default_host();
    let Ok(devices) = host.devices() else {
        return Vec::new();
    };
    devices
        .filter(|d| usable(d, direction))
        .map(|d| {
            Chosen {
                id: id_of(&d),
                name: name_of(&d),
            }
            .to_string()
        })
        .collect()
}

/// Finds the device called `wanted` (`None`: the host's default): an exact id first, then
/// the first whose id or name contains it. A miss is [`AudioError::InvalidProperty`] on
/// `device`, listing the devices there are.
pub(crate) fn choose(
    handler: &'static str,
    wanted: Option<&str>,
    direction: Direction,
) -> Result<Chosen, AudioError> {
    let host = cpal::default_host();
    let found = match wanted {
        None => match direction {
            Direction::Output => host.default_output_device(),
            Direction::Input => host.default_input_device(),
        },
        Some(wanted) => {
            let needle = wanted.to_lowercase();
            let devices: Vec<cpal::Device> = host
                .devices()
                .map(|d| d.filter(|d| usable(d, direction)).collect())
                .unwrap_or_default();
            devices
                .iter()
                .find(|d| id_of(d) == wanted)
                .or_else(|| {
                    devices.iter().find(|d| {
                        id_of(d).to_lowercase().contains(&needle)
                            || name_of(d).to_lowercase().contains(&needle)
                    })
                })
                .cloned()
        }
    };
    match found {
        Some(device) => Ok(Chosen {
            id: id_of(&device),
            name: name_of(&device),
        }),
        None => Err(AudioError::InvalidProperty {
            handler,
            property: "device",
            value: wanted.unwrap_or("(the default)").to_owned(),
            expected: format!(
                "the name (or part of it) of one of the {} devices: {}",
                match direction {
                    Direction::Output => "output",
                    Direction::Input => "input",
                },
                available(direction).join(", ")
            ),
        }),
    }
}

/// The device `chosen` names, found again (after a restart the host lists it anew).
pub(crate) fn reopen(chosen: &Chosen) -> Option<cpal::Device> {
    let host = cpal::default_host();
    if chosen.id == "default" {
        // Not always among the hints; the host hands it out for either direction.
        return host.default_output_device();
    }
    host.devices().ok()?.find(|d| id_of(d) == chosen.id)
}
