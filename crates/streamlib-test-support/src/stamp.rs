//! Reading `testpattern stamp=true`'s frame stamp in a browser page.
//!
//! The stamp's layout is defined once, in `streamlib_handlers_video::stamp`: 88 blocks in the
//! top-left corner, each `min(16, width / 88)` pixels square rounded down to even, black 0 /
//! white 1, most significant bit first: 32 bits of frame number, 48 bits of UNIX
//! milliseconds, 8 bits of XOR check. [`DECODE_JS`] is the same reader in JavaScript, for a
//! test page to inject: it defines `streamlibStamp(source, width, height)`, which draws
//! `source` (a `<video>`, `<canvas>` or image) into a scratch canvas and returns
//! `{frame, ms}`, or `null` when there is no valid stamp. Latency in the page is then
//! `Date.now() - stamp.ms`, on the same machine's clock as the sender's.

/// Defines `streamlibStamp(source, width, height)` in the page (see the module docs).
pub const DECODE_JS: &str = r#"
window.streamlibStamp = function (source, width, height) {
  const side = Math.min(16, Math.floor(width / 88)) & ~1;
  if (side < 2 || height < side) return null;
  let canvas = window.__streamlibStampCanvas;
  if (!canvas) {
    canvas = document.createElement('canvas');
    window.__streamlibStampCanvas = canvas;
  }
  canvas.width = width;
  canvas.height = side;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(source, 0, 0, width, height, 0, 0, width, height);
  const row = ctx.getImageData(0, Math.floor(side / 2), 88 * side, 1).data;
  const bytes = new Array(11).fill(0);
  for (let i = 0; i < 88; i++) {
    const x = i * side + Math.floor(side / 2);
    const luma = (row[x * 4] + row[x * 4 + 1] + row[x * 4 + 2]) / 3;
    if (luma >= 128) bytes[i >> 3] |= 0x80 >> (i & 7);
  }
  let check = 0;
  for (let i = 0; i < 10; i++) check ^= bytes[i];
  if (check !== bytes[10]) return null;
  const frame = ((bytes[0] << 24) >>> 0) + (bytes[1] << 16) + (bytes[2] << 8) + bytes[3];
  let ms = 0;
  for (let i = 4; i < 10; i++) ms = ms * 256 + bytes[i];
  return { frame: frame, ms: ms };
};
"#;
