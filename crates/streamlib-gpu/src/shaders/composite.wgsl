// Source-over compositing in exactly the integer arithmetic of streamlib-handlers-video's CPU
// `Compositor` (see its `compositor/blend.rs`): a premultiplied RGBA8 canvas (one packed u32
// per pixel, R in the low byte), `div255(v) = (v + 127) / 255`, layers drawn one dispatch each
// in order, then converted to straight alpha into the output texture.

struct Canvas {
    width: u32,
    height: u32,
    background: u32,
    unpremultiply: u32,
}

struct Layer {
    // Canvas rectangle covered: x0..x1, y0..y1.
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    // The layer pixel drawn at canvas (x0, y0).
    src_x: u32,
    src_y: u32,
    premultiplied: u32,
    swap_rb: u32,
    opacity: u32,
}

@group(0) @binding(0) var<uniform> canvas_info: Canvas;
@group(0) @binding(1) var<storage, read_write> canvas: array<u32>;

fn div255(v: vec4<u32>) -> vec4<u32> {
    return (v + vec4<u32>(127u)) / vec4<u32>(255u);
}

fn unpack_bytes(p: u32) -> vec4<u32> {
    return vec4<u32>(p & 0xffu, (p >> 8u) & 0xffu, (p >> 16u) & 0xffu, p >> 24u);
}

fn pack_bytes(v: vec4<u32>) -> u32 {
    return v.x | (v.y << 8u) | (v.z << 16u) | (v.w << 24u);
}

@compute @workgroup_size(16, 16, 1)
fn fill(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= canvas_info.width || id.y >= canvas_info.height) {
        return;
    }
    canvas[id.y * canvas_info.width + id.x] = canvas_info.background;
}

@group(1) @binding(0) var<uniform> layer: Layer;
@group(1) @binding(1) var layer_texture: texture_2d<f32>;

@compute @workgroup_size(16, 16, 1)
fn blend(@builtin(global_invocation_id) id: vec3<u32>) {
    let x = layer.x0 + id.x;
    let y = layer.y0 + id.y;
    if (x >= layer.x1 || y >= layer.y1) {
        return;
    }
    var s = unpack_bytes(pack4x8unorm(textureLoad(
        layer_texture,
        vec2<u32>(layer.src_x + id.x, layer.src_y + id.y),
        0,
    )));
    if (layer.swap_rb != 0u) {
        s = s.zyxw;
    }
    let index = y * canvas_info.width + x;
    let d = unpack_bytes(canvas[index]);
    let o = layer.opacity;
    let a = div255(vec4<u32>(s.w * o)).x;
    let inv = 255u - a;
    var out: vec4<u32>;
    if (layer.premultiplied != 0u) {
        out = div255(min(s * o + d * inv, vec4<u32>(65152u)));
    } else {
        out = div255(vec4<u32>(s.xyz, 255u) * a + d * inv);
    }
    canvas[index] = pack_bytes(out);
}

@group(1) @binding(2) var output_texture: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(16, 16, 1)
fn finish(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= canvas_info.width || id.y >= canvas_info.height) {
        return;
    }
    var p = unpack_bytes(canvas[id.y * canvas_info.width + id.x]);
    let a = p.w;
    if (canvas_info.unpremultiply != 0u && a != 255u) {
        if (a == 0u) {
            p = vec4<u32>(0u);
        } else {
            let c = min((p.xyz * 255u + vec3<u32>(a / 2u)) / vec3<u32>(a), vec3<u32>(255u));
            p = vec4<u32>(c, a);
        }
    }
    textureStore(output_texture, vec2<u32>(id.xy), vec4<f32>(p) / 255.0);
}
