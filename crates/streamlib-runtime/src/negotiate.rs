//! Whole-graph format negotiation: at build, before any frame, in topological order.
//!
//! For each link, from the sources down: what the output produces (its template, with the
//! fields it follows taken from the caps negotiated on its input), intersected with what the
//! input accepts, fixed to one value per field (an open frame rate becomes the clock's). Where
//! the intersection is empty, the cheapest chain of registered converters that bridges it is
//! inserted (with a warning), or the build fails naming both sides and the fix.

use std::sync::Arc;

use streamlib_clock::Rational;
use streamlib_ports::{AnyOutputPort, Caps, Field, FrameRate, MemorySpace, Mismatch, PixelFormat};

use crate::converter::{Conversion, Converter};
use crate::wiring::Link;
use crate::{RuntimeError, StreamRuntime};

/// Longest chain of converters tried on one link.
const MAX_CHAIN: usize = 3;

/// One converter of a planned bridge: what goes in, what comes out.
struct Step {
    converter: Converter,
    input: Caps,
    output: Caps,
}

impl StreamRuntime {
    /// Negotiates every link's format, inserting converters where allowed, then wires the
    /// ports. Idempotent; [`start`](Self::start) calls it. After it, no stream can be added
    /// and no link made; [`connections`](Self::connections) carry the negotiated caps.
    ///
    /// # Errors
    /// [`RuntimeError::NotNegotiated`] for a link nothing bridges (or, with auto-convert
    /// off, any link whose caps differ); [`RuntimeError::TransformRefused`] for a handler
    /// that cannot carry what its input gets; the errors of [`validate`](Self::validate).
    pub fn negotiate(&mut self) -> Result<&[crate::Connection], RuntimeError> {
        if self.negotiated {
            return Ok(&self.connections);
        }
        self.ensure_building("negotiate")?;
        if self.negotiation_failed {
            return Err(RuntimeError::InvalidState {
                action: "negotiate",
                state: "after a failed negotiation (build a new runtime)",
            });
        }
        if let Err(e) = self.negotiate_all() {
            // Ports may hold caps and links may be half rewritten: this runtime is done.
            self.negotiation_failed = true;
            return Err(e);
        }
        self.negotiated = true;
        Ok(&self.connections)
    }

    fn negotiate_all(&mut self) -> Result<(), RuntimeError> {
        let order = self.validate()?;
        let mut position = vec![0; self.added.len()];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let mut pending: Vec<usize> = (0..self.links.len()).collect();
        pending.sort_by_key(|&l| position[self.links[l].from]);
        let clock = self.clock_info.fps;
        for l in pending {
            self.negotiate_link(l, clock)?;
        }
        for link in &self.links {
            link.output
                .connect_to(&*link.input)
                .map_err(|source| RuntimeError::Port {
                    output: self.port_label(link.from, link.output.name()),
                    input: self.port_label(link.to, link.input.name()),
                    source,
                })?;
        }
        for c in &mut self.connections {
            c.caps = self
                .links
                .iter()
                .find(|l| {
                    l.input.name() == c.input.rsplit('.').next().unwrap_or_default()
                        && self.added[l.to].stream.id == c.input.split('.').next().unwrap_or("")
                })
                .and_then(|l| l.input.negotiated_format());
        }
        Ok(())
    }

    /// The frame rates the sources fix (outputs whose caps fix a rate and follow no input),
    /// as `(stream.port, rate)`: what a caller without a chosen rate builds the clock from.
    pub fn source_rates(&self) -> Vec<(String, Rational)> {
        let mut rates = Vec::new();
        for (owner, added) in self.added.iter().enumerate() {
            for output in added.ports.outputs() {
                if output.follows().is_some() {
                    continue;
                }
                if let Some(rate) = output.format_caps().as_video().and_then(|v| v.rate.fixed()) {
                    rates.push((self.port_label(owner, output.name()), rate.0));
                }
            }
        }
        rates
    }

    /// What `output` produces, before its links narrow it. A video output whose rate nothing
    /// fixes (a source, or a transform whose input says none) makes one frame per tick: its
    /// rate is the clock's, whatever a sink would like.
    fn produced(
        &self,
        owner: usize,
        output: &Arc<dyn AnyOutputPort>,
        clock: Rational,
    ) -> Result<Caps, RuntimeError> {
        let mut caps = self.declared(owner, output)?;
        if let Caps::Video(v) = &mut caps
            && v.rate == Field::Any
        {
            v.rate = Field::Fixed(FrameRate(clock));
        }
        Ok(caps)
    }

    /// What `output` declares, with what it follows filled in.
    fn declared(
        &self,
        owner: usize,
        output: &Arc<dyn AnyOutputPort>,
    ) -> Result<Caps, RuntimeError> {
        if let Some(caps) = output.negotiated_format() {
            return Ok(caps);
        }
        let template = output.format_caps();
        let Some((input_id, follow)) = output.follows() else {
            return Ok(template);
        };
        let inputs = self.added[owner].ports.inputs();
        let Some(input) = inputs.iter().find(|p| p.id() == input_id) else {
            return Ok(template);
        };
        let Some(carried) = input.negotiated_format() else {
            return Ok(template);
        };
        follow
            .apply(&template, &carried)
            .map_err(|field| RuntimeError::TransformRefused {
                output: self.port_label(owner, output.name()),
                output_caps: template,
                input: self.port_label(owner, input.name()),
                input_caps: carried,
                field: field.to_string(),
            })
    }

    fn negotiate_link(&mut self, l: usize, clock: Rational) -> Result<(), RuntimeError> {
        let (output, input) = (
            Arc::clone(&self.links[l].output),
            Arc::clone(&self.links[l].input),
        );
        let from = self.links[l].from;
        let produced = self.produced(from, &output, clock)?;
        let accepted = input.format_caps();
        if produced == Caps::Any {
            // Nothing declared upstream: nothing is known, and the input is not told its own
            // template as if it were what arrives.
            input.set_negotiated_format(Caps::Any);
            return Ok(());
        }
        match produced.try_intersect(&accepted) {
            Ok(caps) => {
                let caps = caps.fixate(clock);
                if output.negotiated_format().is_none() {
                    output.set_negotiated_format(caps.clone());
                }
                input.set_negotiated_format(caps);
                Ok(())
            }
            Err(mismatch) => {
                // Narrow what does agree first (a reader offering I420 or RGBA into an RGBA
                // input at another size keeps RGBA and needs only a scaler), then fix the rest.
                let narrowed = narrow(&produced, &accepted).fixate(clock);
                self.bridge(l, narrowed, &accepted, mismatch, clock)
            }
        }
    }

    fn not_negotiated(
        &self,
        l: usize,
        produced: &Caps,
        accepted: &Caps,
        mismatch: Mismatch,
        fix: String,
    ) -> RuntimeError {
        let link = &self.links[l];
        let fields = differing(produced, accepted);
        RuntimeError::NotNegotiated {
            output: self.port_label(link.from, link.output.name()),
            output_caps: produced.clone(),
            input: self.port_label(link.to, link.input.name()),
            input_caps: accepted.clone(),
            field: if fields.is_empty() {
                mismatch.to_string()
            } else {
                fields.join(" and ")
            },
            fix,
        }
    }

    fn bridge(
        &mut self,
        l: usize,
        produced: Caps,
        accepted: &Caps,
        mismatch: Mismatch,
        clock: Rational,
    ) -> Result<(), RuntimeError> {
        if mismatch == Mismatch::Kind {
            return Err(self.not_negotiated(
                l,
                &produced,
                accepted,
                mismatch,
                "link it to an input of the same kind".to_owned(),
            ));
        }
        let plan = self.plan(&produced, accepted, clock);
        let names = |steps: &[Step]| {
            steps
                .iter()
                .map(|s| format!("{} ({} -> {})", s.converter.name, s.input, s.output))
                .collect::<Vec<_>>()
                .join(", then ")
        };
        let Some(steps) = plan else {
            let registered: Vec<_> = self.converters.conversions().map(|c| c.field()).collect();
            let fix = if registered.is_empty() {
                "no format converter is registered (the video handlers register convert, \
                 scale and videorate); set the format where it originates"
                    .to_owned()
            } else {
                let mut fields = differing(&produced, accepted);
                if fields.is_empty() {
                    fields.push(match mismatch {
                        Mismatch::Field(f) => f,
                        Mismatch::Kind => "kind",
                    });
                }
                let rate = fields.contains(&"rate");
                format!(
                    "no chain of the registered converters ({}) bridges them; set the {} where \
                     it originates{}",
                    registered.join(", "),
                    fields.join(" and "),
                    if rate {
                        format!(
                            " (the rate adapter makes only the pipeline's rate, {clock}: run it \
                             at the rate the input fixes with --fps)"
                        )
                    } else {
                        String::new()
                    }
                )
            };
            return Err(self.not_negotiated(l, &produced, accepted, mismatch, fix));
        };
        if !self.auto_convert {
            let fix = format!(
                "auto-convert is off: insert {} yourself, or set the {mismatch} where it \
                 originates",
                names(&steps)
            );
            return Err(self.not_negotiated(l, &produced, accepted, mismatch, fix));
        }
        if self.links[l].memory != MemorySpace::Cpu {
            let fix = format!(
                "the converters work on CPU frames and the link is {}: put a GPU->CPU \
                 transfer first, or set the {mismatch} where it originates",
                self.links[l].memory
            );
            return Err(self.not_negotiated(l, &produced, accepted, mismatch, fix));
        }
        self.insert_converters(l, produced, &steps, clock)
    }

    /// The cheapest chain of converters taking `produced` to something `accepted` allows:
    /// every sequence of the registered conversions up to [`MAX_CHAIN`] long; the shortest
    /// that works wins, and among those the one touching the fewest bytes. Deterministic.
    fn plan(&self, produced: &Caps, accepted: &Caps, clock: Rational) -> Option<Vec<Step>> {
        let available: Vec<Converter> = self
            .converters
            .conversions()
            .filter_map(|c| self.converters.get(c).cloned())
            .collect();
        let mut best: Option<((usize, u64), Vec<Step>)> = None;
        for chain in orderings(available.len(), MAX_CHAIN) {
            let Some((cost, steps)) = simulate(&chain, &available, produced, accepted, clock)
            else {
                continue;
            };
            // Fewest converters first (a conversion avoided beats one that saves bytes),
            // then the fewest bytes touched.
            let key = (steps.len(), cost);
            if best.as_ref().is_none_or(|(k, _)| key < *k) {
                best = Some((key, steps));
            }
        }
        best.map(|(_, steps)| steps)
    }

    fn insert_converters(
        &mut self,
        l: usize,
        produced: Caps,
        steps: &[Step],
        clock: Rational,
    ) -> Result<(), RuntimeError> {
        let output = Arc::clone(&self.links[l].output);
        let input = Arc::clone(&self.links[l].input);
        let (from, to) = (self.links[l].from, self.links[l].to);
        let out_label = self.port_label(from, output.name());
        let in_label = self.port_label(to, input.name());
        if output.negotiated_format().is_none() {
            output.set_negotiated_format(produced.clone());
        }
        let mut upstream: (Arc<dyn AnyOutputPort>, usize) = (output, from);
        let mut ids = Vec::new();
        let mut first = true;
        for step in steps {
            let name = step.converter.name.clone();
            let (converter, id) = self.make_inserted(&name, &out_label, &in_label, || {
                (step.converter.factory)(&step.output)
            })?;
            tracing::warn!(
                "{out_label} produces {produced} but {in_label} accepts {}: inserting '{id}' \
                 ({} -> {}); every frame is converted",
                input.format_caps(),
                step.input,
                step.output
            );
            let (c_in, c_out) = self.add_inserted(&id, converter)?;
            let index = self.added.len() - 1;
            c_in.set_negotiated(MemorySpace::Cpu);
            c_out.set_negotiated(MemorySpace::Cpu);
            c_in.set_negotiated_format(step.input.clone());
            c_out.set_negotiated_format(step.output.clone());
            let link = Link {
                output: Arc::clone(&upstream.0),
                input: Arc::clone(&c_in),
                from: upstream.1,
                to: index,
                memory: MemorySpace::Cpu,
            };
            if first {
                self.links[l] = link;
                first = false;
            } else {
                self.links.push(link);
            }
            upstream = (c_out, index);
            ids.push(id);
        }
        let last = steps.last().map(|s| s.output.clone()).unwrap_or(produced);
        let carried = last
            .intersect(&input.format_caps())
            .unwrap_or(last)
            .fixate(clock);
        input.set_negotiated_format(carried);
        self.links.push(Link {
            output: upstream.0,
            input,
            from: upstream.1,
            to,
            memory: MemorySpace::Cpu,
        });
        if let Some(c) = self
            .connections
            .iter_mut()
            .find(|c| c.output == out_label && c.input == in_label)
        {
            c.converters.extend(ids);
        } else if let Some(c) = self.connections.iter_mut().find(|c| c.input == in_label) {
            // The link ran through a memory transfer: the user's connection names its ends.
            c.converters.extend(ids);
        }
        Ok(())
    }
}

/// `produced` with each video field that `accepted` shares narrowed to what both allow; the
/// fields that disagree are left as produced.
fn narrow(produced: &Caps, accepted: &Caps) -> Caps {
    let (Caps::Video(p), Some(a)) = (produced, accepted.as_video()) else {
        return produced.clone();
    };
    let mut out = p.clone();
    if let Some(f) = p.formats.intersect(&a.formats) {
        out.formats = f;
    }
    if let (Some(w), Some(h)) = (p.width.intersect(&a.width), p.height.intersect(&a.height)) {
        out.width = w;
        out.height = h;
    }
    if let Some(r) = p.rate.intersect(&a.rate) {
        out.rate = r;
    }
    Caps::Video(out)
}

/// The fields in which two video caps share nothing (`format`, `size`, `rate`).
fn differing(a: &Caps, b: &Caps) -> Vec<&'static str> {
    let (Some(a), Some(b)) = (a.as_video(), b.as_video()) else {
        return Vec::new();
    };
    let mut fields = Vec::new();
    if a.formats.intersect(&b.formats).is_none() {
        fields.push("format");
    }
    if a.width.intersect(&b.width).is_none() || a.height.intersect(&b.height).is_none() {
        fields.push("size");
    }
    if a.rate.intersect(&b.rate).is_none() {
        fields.push("rate");
    }
    fields
}

/// Every sequence of `0..n` of 1 to `max` elements (a format converter may be needed on both
/// sides of a scaler that takes only some formats, or twice in a row through an
/// intermediate), shortest first, then lexicographic.
fn orderings(n: usize, max: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut frontier: Vec<Vec<usize>> = vec![Vec::new()];
    for _ in 0..max {
        let mut next = Vec::new();
        for chain in &frontier {
            for i in 0..n {
                let mut c = chain.clone();
                c.push(i);
                next.push(c);
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    out
}

/// Bytes one frame of `caps` occupies (0 when size or format is open).
fn frame_bytes(caps: &Caps) -> u64 {
    caps.video_info().map_or(0, |v| {
        v.format
            .buffer_len(v.height, v.format.min_stride(v.width) as u32) as u64
    })
}

/// The caps `caps` has after a converter sets its field to what `want` asks: for a format,
/// the most preferred one `produces` allows that `supports` says it can make from `caps`.
fn convert_to(
    conversion: Conversion,
    caps: &Caps,
    want: &Caps,
    converter: &Converter,
    clock: Rational,
) -> Option<Caps> {
    if let (Conversion::Channels, Caps::Audio(have), Caps::Audio(want)) = (conversion, caps, want) {
        // A channel mixer makes any count the target fixes, at the input's rate.
        let channels = want.channels.fixate(have.channels.fixed()).fixed()?;
        if have.channels.fixed() == Some(channels) {
            return None;
        }
        let mut out = have.clone();
        out.channels = Field::Fixed(channels);
        return Some(Caps::Audio(out));
    }
    if let (Conversion::SampleRate, Caps::Audio(have), Caps::Audio(want)) = (conversion, caps, want)
    {
        // A resampler makes any rate the target fixes, at the input's channel count.
        let rate = want.rate.fixate(have.rate.fixed()).fixed()?;
        if have.rate.fixed() == Some(rate) {
            return None;
        }
        let mut out = have.clone();
        out.rate = Field::Fixed(rate);
        return Some(Caps::Audio(out));
    }
    let (Caps::Video(have), Caps::Video(want)) = (caps, want) else {
        return None;
    };
    let mut out = have.clone();
    match conversion {
        Conversion::Channels | Conversion::SampleRate => return None,
        Conversion::Format => {
            let formats = match converter.produces.as_video() {
                Some(c) => want.formats.intersect(&c.formats)?,
                None => want.formats.clone(),
            };
            let candidates = match &formats {
                streamlib_ports::Formats::List(list) => list.clone(),
                streamlib_ports::Formats::Any => PixelFormat::ALL.to_vec(),
            };
            let made = candidates.into_iter().find_map(|format| {
                if have.formats.preferred() == Some(format) {
                    return None;
                }
                let mut made = have.clone();
                made.formats = streamlib_ports::Formats::List(vec![format]);
                let made = Caps::Video(made);
                converter
                    .supports
                    .as_ref()
                    .is_none_or(|supports| supports(caps, &made))
                    .then_some(made)
            })?;
            return Some(made);
        }
        Conversion::Size => {
            let (w, h) = (
                want.width.fixate(None).fixed()?,
                want.height.fixate(None).fixed()?,
            );
            if have.width.fixed() == Some(w) && have.height.fixed() == Some(h) {
                return None;
            }
            out.width = Field::Fixed(w);
            out.height = Field::Fixed(h);
        }
        Conversion::Rate => {
            // A rate adapter repeats or drops frames on the clock's ticks: it can only
            // produce the clock's rate.
            let rate = FrameRate(clock);
            if !want.rate.allows(rate) || have.rate.fixed() == Some(rate) {
                return None;
            }
            out.rate = Field::Fixed(rate);
        }
    }
    Some(Caps::Video(out))
}

fn simulate(
    chain: &[usize],
    available: &[Converter],
    produced: &Caps,
    accepted: &Caps,
    clock: Rational,
) -> Option<(u64, Vec<Step>)> {
    let mut cur = produced.clone();
    let mut cost = 0u64;
    let mut steps = Vec::with_capacity(chain.len());
    for (k, &i) in chain.iter().enumerate() {
        let converter = &available[i];
        // What the converter's own input takes of what arrives.
        let input = cur.intersect(&converter.accepts)?.fixate(clock);
        // Aim at what the next converter (if any) accepts, within what the link accepts.
        let want = match chain.get(k + 1) {
            // Two of a kind in a row: this one makes an intermediate the next one takes
            // (UYVY -> RGBA -> I420 through a converter that goes YUV -> RGB -> YUV).
            Some(&j) if available[j].conversion == converter.conversion => {
                available[j].accepts.clone()
            }
            Some(&j) => {
                let next = &available[j];
                // The next one changes its own field: only ask for the others.
                let need = relax(&next.accepts, next.conversion);
                accepted.intersect(&need).unwrap_or(need)
            }
            None => accepted.clone(),
        };
        let output = convert_to(converter.conversion, &input, &want, converter, clock)?;
        if let Some(supports) = &converter.supports
            && !supports(&input, &output)
        {
            return None;
        }
        cost += frame_bytes(&input) + frame_bytes(&output) + 1;
        steps.push(Step {
            converter: converter.clone(),
            input,
            output: output.clone(),
        });
        cur = output;
    }
    cur.intersect(accepted)?;
    Some((cost, steps))
}

/// `caps` with the field `conversion` changes opened to any.
fn relax(caps: &Caps, conversion: Conversion) -> Caps {
    if let Caps::Audio(a) = caps {
        let mut a = a.clone();
        match conversion {
            Conversion::Channels => a.channels = Field::Any,
            Conversion::SampleRate => a.rate = Field::Any,
            _ => {}
        }
        return Caps::Audio(a);
    }
    let Caps::Video(v) = caps else {
        return caps.clone();
    };
    let mut v = v.clone();
    match conversion {
        Conversion::Channels | Conversion::SampleRate => {}
        Conversion::Format => v.formats = streamlib_ports::Formats::Any,
        Conversion::Size => {
            v.width = Field::Any;
            v.height = Field::Any;
        }
        Conversion::Rate => v.rate = Field::Any,
    }
    Caps::Video(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orderings_are_shortest_first() {
        let all = orderings(3, 3);
        assert_eq!(all.len(), 3 + 9 + 27);
        assert_eq!(all[0], vec![0]);
        assert_eq!(all[3], vec![0, 0]);
    }
}
