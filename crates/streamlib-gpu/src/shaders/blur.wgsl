// Separable Gaussian blur in exactly the integer arithmetic of streamlib-handlers-video's CPU
// `Blur` (see its `blur/kernel.rs`): a vertical pass from bytes into Q7 (`value * 128`), then a
// horizontal pass from Q7 into bytes. Every sum is a u16 that wraps, as the CPU's 16-bit lanes
// do; `mulhi(a, b) = (a * b) >> 16`. Edges are clamped (replicate border). Each pass loads a
// tile plus a `radius`-wide apron into workgroup memory once, then every invocation reads its
// taps from there.

struct Params {
    width: u32,
    height: u32,
    radius: u32,
    vertical_bias: u32,
    horizontal_bias: u32,
}

const MAX_RADIUS: u32 = 64u;
const TILE: u32 = 16u;          // vertical pass: 16x16 invocations
const ROW_TILE: u32 = 64u;      // horizontal pass: 64x4 invocations
const ROWS: u32 = 4u;

@group(0) @binding(2) var<uniform> params: Params;
// Pair weights: Q16 for the centre, Q17 for the others (`radius + 1` entries).
@group(0) @binding(3) var<storage, read> weights: array<u32>;

fn mulhi(a: u32, b: u32) -> u32 {
    return (a * b) >> 16u;
}

// ---- vertical pass: bytes -> Q7 ------------------------------------------------------------

@group(0) @binding(0) var source: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> q7_out: array<u32>;

// (TILE + 2 * MAX_RADIUS) rows of TILE columns, one packed RGBA8 pixel each.
var<workgroup> column_tile: array<u32, 2304>;

@compute @workgroup_size(16, 16, 1)
fn vertical(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let radius = params.radius;
    let x = group.x * TILE + local.x;
    let y = group.y * TILE + local.y;
    let sx = min(x, params.width - 1u);
    let rows = TILE + 2u * radius;
    for (var r = local.y; r < rows; r += TILE) {
        let sy = u32(clamp(i32(group.y * TILE + r) - i32(radius), 0, i32(params.height) - 1));
        let texel = textureLoad(source, vec2<u32>(sx, sy), 0);
        column_tile[r * TILE + local.x] = pack4x8unorm(texel);
    }
    workgroupBarrier();
    if (x >= params.width || y >= params.height) {
        return;
    }
    var acc = vec4<u32>(params.vertical_bias);
    for (var k = 0u; k <= radius; k++) {
        let up = unpack_bytes(column_tile[(local.y + radius - k) * TILE + local.x]);
        let down = unpack_bytes(column_tile[(local.y + radius + k) * TILE + local.x]);
        let w = weights[k];
        let pair = (up + down) << vec4<u32>(6u);
        acc = (acc + ((pair * w) >> vec4<u32>(16u))) & vec4<u32>(0xffffu);
    }
    let index = (y * params.width + x) * 2u;
    q7_out[index] = acc.x | (acc.y << 16u);
    q7_out[index + 1u] = acc.z | (acc.w << 16u);
}

fn unpack_bytes(p: u32) -> vec4<u32> {
    return vec4<u32>(p & 0xffu, (p >> 8u) & 0xffu, (p >> 16u) & 0xffu, p >> 24u);
}

// ---- horizontal pass: Q7 -> bytes ----------------------------------------------------------

@group(0) @binding(4) var<storage, read> q7_in: array<u32>;
@group(0) @binding(5) var target_texture: texture_storage_2d<rgba8unorm, write>;

// ROWS rows of (ROW_TILE + 2 * MAX_RADIUS) pixels, two u32 (four Q7 lanes) each.
var<workgroup> row_tile: array<vec2<u32>, 768>;

@compute @workgroup_size(64, 4, 1)
fn horizontal(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let radius = params.radius;
    let x = group.x * ROW_TILE + local.x;
    let y = group.y * ROWS + local.y;
    let sy = min(y, params.height - 1u);
    let span = ROW_TILE + 2u * radius;
    let row_start = local.y * (ROW_TILE + 2u * MAX_RADIUS);
    for (var c = local.x; c < span; c += ROW_TILE) {
        let sx = u32(clamp(i32(group.x * ROW_TILE + c) - i32(radius), 0, i32(params.width) - 1));
        let index = (sy * params.width + sx) * 2u;
        row_tile[row_start + c] = vec2<u32>(q7_in[index], q7_in[index + 1u]);
    }
    workgroupBarrier();
    if (x >= params.width || y >= params.height) {
        return;
    }
    var acc = vec4<u32>(params.horizontal_bias);
    for (var k = 0u; k <= radius; k++) {
        let left = unpack_q7(row_tile[row_start + local.x + radius - k]);
        let right = unpack_q7(row_tile[row_start + local.x + radius + k]);
        let w = weights[k];
        let pair = (left + right) & vec4<u32>(0xffffu);
        acc = (acc + ((pair * w) >> vec4<u32>(16u))) & vec4<u32>(0xffffu);
    }
    let bytes = acc >> vec4<u32>(8u);
    textureStore(target_texture, vec2<u32>(x, y), vec4<f32>(bytes) / 255.0);
}

fn unpack_q7(p: vec2<u32>) -> vec4<u32> {
    return vec4<u32>(p.x & 0xffffu, p.x >> 16u, p.y & 0xffffu, p.y >> 16u);
}
