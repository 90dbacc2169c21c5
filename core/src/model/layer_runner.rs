//! How a forward pass runs the decoder layers. The model runs them one after the other
//! ([`PlainLayers`]); a caller that wants them run differently passes its own [`LayerRunner`] to
//! [`super::DecoderModel::forward_layers_run`] (training passes one that keeps only each layer's
//! input and recomputes the layers in the backward pass: `train::grad_checkpoint`). The model
//! itself knows nothing of training: the runner is an explicit argument, never ambient state.
use super::attention::LayerContext;
use super::decoder::DecoderModel;
use burn::tensor::{backend::Backend, Tensor};

/// Runs a decoder's layers on the residual stream `x` (`[b, s, hidden]`), calling `hook(layer, x)`
/// on the stream entering each layer.
pub trait LayerRunner<B: Backend> {
    fn run(
        &self,
        model: &DecoderModel<B>,
        x: Tensor<B, 3>,
        ctx: &LayerContext<B>,
        hook: &mut dyn FnMut(usize, Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3>;
}

/// The ordinary forward pass: each layer on the previous layer's output.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainLayers;

impl<B: Backend> LayerRunner<B> for PlainLayers {
    fn run(
        &self,
        model: &DecoderModel<B>,
        mut x: Tensor<B, 3>,
        ctx: &LayerContext<B>,
        hook: &mut dyn FnMut(usize, Tensor<B, 3>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        for (i, layer) in model.layers.iter().enumerate() {
            x = hook(i, x);
            x = layer.forward(x, ctx);
        }
        x
    }
}
