//! The GPU compositing kernel: source-over of RGBA8/BGRA8 layers onto a premultiplied canvas in
//! the CPU `Compositor`'s exact integer arithmetic, then straight alpha into a texture.

use crate::{GpuContext, GpuError, GpuTexture};

const SHADER: &str = include_str!("shaders/composite.wgsl");
const LABEL: &str = "streamlib composite";

/// Most layers one [`CompositeKernel::encode`] draws (the CPU compositor's maximum).
pub const MAX_GPU_LAYERS: usize = 64;

/// One layer, clipped to the canvas, ready to draw.
#[derive(Debug, Clone, Copy)]
pub struct GpuLayer<'a> {
    /// The layer's pixels.
    pub texture: &'a GpuTexture,
    /// Canvas columns `x0..x1` are covered.
    pub x0: u32,
    /// End of the covered columns (exclusive).
    pub x1: u32,
    /// Canvas rows `y0..y1` are covered.
    pub y0: u32,
    /// End of the covered rows (exclusive).
    pub y1: u32,
    /// The layer column drawn at canvas column `x0`.
    pub src_x: u32,
    /// The layer row drawn at canvas row `y0`.
    pub src_y: u32,
    /// The layer's colours are premultiplied by its alpha.
    pub premultiplied: bool,
    /// The layer's bytes are B, G, R, A.
    pub swap_rb: bool,
    /// Global opacity as a byte, 1..=255.
    pub opacity: u8,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CanvasParams {
    width: u32,
    height: u32,
    background: u32,
    unpremultiply: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LayerParams {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
    src_x: u32,
    src_y: u32,
    premultiplied: u32,
    swap_rb: u32,
    opacity: u32,
    _pad: [u32; 3],
}

/// The compiled compositing passes: fill the canvas with the background, blend each layer in
/// one dispatch over its rectangle, convert to straight alpha into the output texture.
///
/// Formulas (`div255(v) = (v + 127) / 255`), for a layer pixel `(c, α)` at opacity `o` over a
/// premultiplied canvas pixel `d`: `a = div255(α·o)`; straight: `out_k = div255(c_k·a +
/// d_k·(255 − a))`, `out_α = div255(255·a + dα·(255 − a))`; premultiplied: `out_k =
/// min(255, div255(c_k·o + d_k·(255 − a)))`; finally `c = min(255, (c·255 + ⌊α/2⌋) / α)`
/// where `0 < α < 255` (0 where `α = 0`). The same as the CPU compositor, bit for bit.
#[derive(Debug)]
pub struct CompositeKernel {
    fill: wgpu::ComputePipeline,
    blend: wgpu::ComputePipeline,
    finish: wgpu::ComputePipeline,
    canvas_group: wgpu::BindGroupLayout,
    layer_group: wgpu::BindGroupLayout,
    output_group: wgpu::BindGroupLayout,
    canvas_params: wgpu::Buffer,
    layer_params: wgpu::Buffer,
    layer_stride: u64,
    canvas: Option<(wgpu::Buffer, u32, u32)>,
    staged: Vec<u8>,
}

fn layout_entry(binding: u32, ty: wgpu::BindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty,
        count: None,
    }
}

fn uniform(dynamic: bool) -> wgpu::BindingType {
    wgpu::BindingType::Buffer {
        ty: wgpu::BufferBindingType::Uniform,
        has_dynamic_offset: dynamic,
        min_binding_size: None,
    }
}

impl CompositeKernel {
    /// Compiles the passes on `ctx`.
    pub fn new(ctx: &GpuContext) -> Result<Self, GpuError> {
        let device = ctx.device();
        // Dynamic offsets must be multiples of the device's alignment.
        let layer_stride = (size_of::<LayerParams>() as u64).next_multiple_of(u64::from(
            ctx.limits().min_uniform_buffer_offset_alignment.max(1),
        ));
        let made = ctx.scoped("create compositing layouts", || {
            let canvas_group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(LABEL),
                entries: &[
                    layout_entry(0, uniform(false)),
                    layout_entry(
                        1,
                        wgpu::BindingType::Buffer {
                            ty: wgpu::BufferBindingType::Storage { read_only: false },
                            has_dynamic_offset: false,
                            min_binding_size: None,
                        },
                    ),
                ],
            });
            let layer_group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(LABEL),
                entries: &[
                    layout_entry(0, uniform(true)),
                    layout_entry(
                        1,
                        wgpu::BindingType::Texture {
                            sample_type: wgpu::TextureSampleType::Float { filterable: false },
                            view_dimension: wgpu::TextureViewDimension::D2,
                            multisampled: false,
                        },
                    ),
                ],
            });
            let output_group = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(LABEL),
                entries: &[layout_entry(
                    2,
                    wgpu::BindingType::StorageTexture {
                        access: wgpu::StorageTextureAccess::WriteOnly,
                        format: crate::GPU_FRAME_FORMAT,
                        view_dimension: wgpu::TextureViewDimension::D2,
                    },
                )],
            });
            let layouts = [
                device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(LABEL),
                    bind_group_layouts: &[Some(&canvas_group)],
                    immediate_size: 0,
                }),
                device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(LABEL),
                    bind_group_layouts: &[Some(&canvas_group), Some(&layer_group)],
                    immediate_size: 0,
                }),
                device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(LABEL),
                    bind_group_layouts: &[Some(&canvas_group), Some(&output_group)],
                    immediate_size: 0,
                }),
            ];
            let canvas_params = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(LABEL),
                size: size_of::<CanvasParams>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let layer_params = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(LABEL),
                size: layer_stride * MAX_GPU_LAYERS as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (
                canvas_group,
                layer_group,
                output_group,
                layouts,
                canvas_params,
                layer_params,
            )
        })?;
        let (canvas_group, layer_group, output_group, layouts, canvas_params, layer_params) = made;
        let [fill_layout, blend_layout, finish_layout] = &layouts;
        let fill = ctx.compute_pipeline(
            "streamlib composite (fill)",
            SHADER,
            "fill",
            Some(fill_layout),
        )?;
        let blend = ctx.compute_pipeline(
            "streamlib composite (blend)",
            SHADER,
            "blend",
            Some(blend_layout),
        )?;
        let finish = ctx.compute_pipeline(
            "streamlib composite (finish)",
            SHADER,
            "finish",
            Some(finish_layout),
        )?;
        Ok(Self {
            fill,
            blend,
            finish,
            canvas_group,
            layer_group,
            output_group,
            canvas_params,
            layer_params,
            layer_stride,
            canvas: None,
            staged: vec![0; layer_stride as usize * MAX_GPU_LAYERS],
        })
    }

    /// Records the composite of `layers` (in drawing order) over `background` (a
    /// **premultiplied** RGBA pixel) into `output`, converting to straight alpha when
    /// `unpremultiply` (skip it for an opaque background: every pixel stays opaque).
    pub fn encode(
        &mut self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        output: &GpuTexture,
        background: [u8; 4],
        unpremultiply: bool,
        layers: &[GpuLayer<'_>],
    ) -> Result<(), GpuError> {
        if layers.len() > MAX_GPU_LAYERS {
            return Err(GpuError::Config {
                handler: "composite-gpu",
                reason: format!("{} layers, at most {MAX_GPU_LAYERS}", layers.len()),
            });
        }
        let (width, height) = (output.width(), output.height());
        let canvas = self.canvas_for(ctx, width, height)?;
        let params = CanvasParams {
            width,
            height,
            background: u32::from_le_bytes(background),
            unpremultiply: u32::from(unpremultiply),
        };
        let stride = self.layer_stride as usize;
        for (layer, chunk) in layers.iter().zip(self.staged.chunks_mut(stride)) {
            let p = LayerParams {
                x0: layer.x0,
                y0: layer.y0,
                x1: layer.x1.min(width),
                y1: layer.y1.min(height),
                src_x: layer.src_x,
                src_y: layer.src_y,
                premultiplied: u32::from(layer.premultiplied),
                swap_rb: u32::from(layer.swap_rb),
                opacity: u32::from(layer.opacity),
                _pad: [0; 3],
            };
            chunk[..size_of::<LayerParams>()].copy_from_slice(bytemuck::bytes_of(&p));
        }
        let device = ctx.device();
        let staged = &self.staged[..stride * layers.len()];
        let (canvas_bind, layer_binds, output_bind) = ctx.scoped("bind compositing", || {
            ctx.queue()
                .write_buffer(&self.canvas_params, 0, bytemuck::bytes_of(&params));
            if !staged.is_empty() {
                ctx.queue().write_buffer(&self.layer_params, 0, staged);
            }
            let canvas_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(LABEL),
                layout: &self.canvas_group,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.canvas_params.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: canvas.as_entire_binding(),
                    },
                ],
            });
            let layer_binds: Vec<wgpu::BindGroup> = layers
                .iter()
                .map(|layer| {
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(LABEL),
                        layout: &self.layer_group,
                        entries: &[
                            wgpu::BindGroupEntry {
                                binding: 0,
                                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                    buffer: &self.layer_params,
                                    offset: 0,
                                    size: wgpu::BufferSize::new(size_of::<LayerParams>() as u64),
                                }),
                            },
                            wgpu::BindGroupEntry {
                                binding: 1,
                                resource: wgpu::BindingResource::TextureView(layer.texture.view()),
                            },
                        ],
                    })
                })
                .collect();
            let output_bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(LABEL),
                layout: &self.output_group,
                entries: &[wgpu::BindGroupEntry {
                    binding: 2,
                    resource: wgpu::BindingResource::TextureView(output.view()),
                }],
            });
            (canvas_bind, layer_binds, output_bind)
        })?;
        let groups = |w: u32, h: u32| (w.div_ceil(16), h.div_ceil(16));
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("streamlib composite (fill)"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.fill);
            pass.set_bind_group(0, &canvas_bind, &[]);
            let (x, y) = groups(width, height);
            pass.dispatch_workgroups(x, y, 1);
        }
        for (i, (layer, bind)) in layers.iter().zip(&layer_binds).enumerate() {
            let (x1, y1) = (layer.x1.min(width), layer.y1.min(height));
            if layer.x0 >= x1 || layer.y0 >= y1 || layer.opacity == 0 {
                continue;
            }
            let offset = u32::try_from(i as u64 * self.layer_stride).unwrap_or(0);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("streamlib composite (blend)"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.blend);
            pass.set_bind_group(0, &canvas_bind, &[]);
            pass.set_bind_group(1, bind, &[offset]);
            let (x, y) = groups(x1 - layer.x0, y1 - layer.y0);
            pass.dispatch_workgroups(x, y, 1);
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("streamlib composite (finish)"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.finish);
            pass.set_bind_group(0, &canvas_bind, &[]);
            pass.set_bind_group(1, &output_bind, &[]);
            let (x, y) = groups(width, height);
            pass.dispatch_workgroups(x, y, 1);
        }
        Ok(())
    }

    fn canvas_for(
        &mut self,
        ctx: &GpuContext,
        width: u32,
        height: u32,
    ) -> Result<wgpu::Buffer, GpuError> {
        if let Some((buffer, w, h)) = &self.canvas
            && (*w, *h) == (width, height)
        {
            return Ok(buffer.clone());
        }
        let bytes = u64::from(width) * u64::from(height) * 4;
        ctx.check_buffer_size("compositing canvas buffer", bytes, true)?;
        let buffer = ctx.scoped("create the compositing canvas", || {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some("streamlib composite canvas"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })?;
        self.canvas = Some((buffer.clone(), width, height));
        Ok(buffer)
    }
}
