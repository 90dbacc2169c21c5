//! Text -> vector: template, tokenize (+EOS), right-padded batch, decoder, pooling, L2 norm.
use crate::error::Result;
use crate::model::{AttentionMask, DecoderModel, LayerRunner, LoadOptions};
use crate::model_source::ModelSource;
use crate::pooling::{eos_pool, l2_normalize, mean_pool, Pooling};
use crate::template::{Kind, Template};
use crate::tokenizer::TextTokenizer;
use crate::truncation::{Truncation, TruncationStats};
use burn::tensor::{backend::Backend, DType, Int, Tensor, TensorData};

#[derive(Debug, Clone, Copy)]
pub struct EncoderOptions {
    pub template: Template,
    pub max_len: usize,
    pub normalize: bool,
    pub pooling: Pooling,
    /// How inputs longer than `max_len` are cut (default: the content only, keeping the template).
    pub truncation: Truncation,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            template: crate::defaults::TEMPLATE,
            max_len: crate::defaults::PASSAGE_MAX_LEN,
            normalize: crate::defaults::NORMALIZE,
            pooling: crate::defaults::POOLING,
            truncation: crate::defaults::TRUNCATION,
        }
    }
}

pub struct Encoder<B: Backend> {
    pub model: DecoderModel<B>,
    pub tokenizer: TextTokenizer,
    pub options: EncoderOptions,
    /// The token embedding table kept on the host (see [`LoadOptions::host_embeddings`]).
    pub host_embeddings: Option<HostEmbeddings>,
    /// What [`Self::tokenize`] has cut so far, per kind (queries, passages).
    pub truncated: [TruncationStats; 2],
}

/// A token embedding table in host memory, `[vocab, hidden]` row-major: rows are gathered here and
/// only the `[b, s, hidden]` result goes to the device. Used where the table is larger than one
/// WebGPU storage binding may be.
pub struct HostEmbeddings {
    pub table: Vec<f32>,
    pub hidden: usize,
}

impl HostEmbeddings {
    /// Reads the checkpoint's embedding table.
    pub fn read(ckpt: &ModelSource) -> Result<Self> {
        let name = crate::model::embed_tokens_name(&ckpt.weights);
        let (table, shape) = ckpt.weights.read_f32(&name)?;
        let c = &ckpt.config;
        if shape != [c.vocab_size, c.hidden_size] {
            return Err(crate::error::Error::Weights {
                path: ckpt.weights.origin.clone(),
                message: format!("wrong shape: `{name}` expected {:?}, found {shape:?}", [c.vocab_size, c.hidden_size]),
            });
        }
        Ok(Self { table, hidden: c.hidden_size })
    }

    /// The rows of a right-padded batch as `[b, s, hidden]` on `device`.
    pub fn lookup<B: Backend>(&self, seqs: &[Vec<u32>], pad_id: u32, device: &B::Device, dtype: DType) -> Tensor<B, 3> {
        let b = seqs.len();
        let s = seqs.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let h = self.hidden;
        let mut out = Vec::with_capacity(b * s * h);
        for seq in seqs {
            for j in 0..s {
                let t = seq.get(j).copied().unwrap_or(pad_id) as usize;
                out.extend_from_slice(&self.table[t * h..(t + 1) * h]);
            }
        }
        Tensor::from_data(TensorData::new(out, [b, s, h]), (device, dtype))
    }
}

/// A right-padded batch of token ids with RoPE positions counted from each row's first token.
pub struct PaddedBatch<B: Backend> {
    pub input_ids: Tensor<B, 2, Int>,
    pub positions: Tensor<B, 2, Int>,
    pub lengths: Vec<usize>,
}

impl<B: Backend> PaddedBatch<B> {
    pub fn new(seqs: &[Vec<u32>], pad_id: u32, device: &B::Device) -> Self {
        let b = seqs.len();
        let s = seqs.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut ids = vec![pad_id as i64; b * s];
        let mut pos = vec![0i64; b * s];
        for (i, seq) in seqs.iter().enumerate() {
            for (j, &t) in seq.iter().enumerate() {
                ids[i * s + j] = t as i64;
            }
            for j in 0..s {
                pos[i * s + j] = j as i64;
            }
        }
        Self {
            input_ids: Tensor::from_data(TensorData::new(ids, [b, s]), device),
            positions: Tensor::from_data(TensorData::new(pos, [b, s]), device),
            lengths: seqs.iter().map(Vec::len).collect(),
        }
    }
}

/// Groups indices into batches of similar length (longest first) for speed; callers put the
/// results back in input order.
pub fn length_sorted_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    order.chunks(batch_size.max(1)).map(|c| c.to_vec()).collect()
}

/// The encoder's forward pass on a model (training uses it on `Autodiff` backends): right-padded
/// batch, causal attention, pooling after the final norm, f32, optional L2 normalisation.
pub fn embed<B: Backend>(
    model: &DecoderModel<B>,
    seqs: &[Vec<u32>],
    pad_id: u32,
    pooling: Pooling,
    normalize: bool,
) -> Tensor<B, 2> {
    embed_with(model, None, seqs, pad_id, pooling, normalize)
}

/// [`embed`] with the decoder layers run by `layers` (a training step's gradient checkpointing;
/// see [`crate::model::LayerRunner`]).
pub fn embed_run<B: Backend>(
    model: &DecoderModel<B>,
    layers: &dyn LayerRunner<B>,
    seqs: &[Vec<u32>],
    pad_id: u32,
    pooling: Pooling,
    normalize: bool,
) -> Tensor<B, 2> {
    let batch = PaddedBatch::<B>::new(seqs, pad_id, &model.device());
    let x = model.embed_ids(batch.input_ids);
    let hidden = model.forward_layers_run(x, batch.positions, &AttentionMask::Causal, &mut |_, x| x, layers);
    pool(model, hidden, &batch.lengths, pooling, normalize)
}

/// [`embed`], with token rows taken from a host table when one is given.
pub fn embed_with<B: Backend>(
    model: &DecoderModel<B>,
    host: Option<&HostEmbeddings>,
    seqs: &[Vec<u32>],
    pad_id: u32,
    pooling: Pooling,
    normalize: bool,
) -> Tensor<B, 2> {
    let device = model.device();
    let batch = PaddedBatch::<B>::new(seqs, pad_id, &device);
    let hidden = match host {
        None => model.forward_layers(batch.input_ids, batch.positions, &AttentionMask::Causal),
        Some(h) => {
            let x = h.lookup::<B>(seqs, pad_id, &device, model.compute_dtype());
            model.forward_layers_from(x, batch.positions, &AttentionMask::Causal, &mut |_, x| x)
        }
    };
    pool(model, hidden, &batch.lengths, pooling, normalize)
}

/// Pooling after the final norm, in f32, L2-normalised when `normalize`.
fn pool<B: Backend>(
    model: &DecoderModel<B>,
    hidden: Tensor<B, 3>,
    lengths: &[usize],
    pooling: Pooling,
    normalize: bool,
) -> Tensor<B, 2> {
    let pooled = match pooling {
        // The final norm is per position, so norm only the pooled rows.
        Pooling::Eos => model.norm.forward(eos_pool(hidden, lengths)),
        Pooling::Mean => mean_pool(model.norm.forward(hidden), lengths),
    };
    let pooled = if pooled.dtype() == DType::F32 { pooled } else { pooled.cast(DType::F32) };
    if normalize {
        l2_normalize(pooled)
    } else {
        pooled
    }
}

impl<B: Backend> Encoder<B> {
    /// Loads an encoder from a checkpoint (no lm_head).
    pub fn load(ckpt: &ModelSource, options: EncoderOptions, dtype: DType, device: &B::Device) -> Result<Self> {
        Self::load_with(
            ckpt,
            options,
            LoadOptions { dtype, lm_head: false, host_embeddings: false, compute_dtype: None },
            device,
        )
    }

    /// [`Self::load`] with every load option; `host_embeddings` keeps the token table on the host.
    pub fn load_with(
        ckpt: &ModelSource,
        options: EncoderOptions,
        load: LoadOptions,
        device: &B::Device,
    ) -> Result<Self> {
        let model = ckpt.load_model(LoadOptions { lm_head: false, ..load }, device)?;
        let host_embeddings = if load.host_embeddings { Some(HostEmbeddings::read(ckpt)?) } else { None };
        Ok(Self::from_model(model, ckpt.tokenizer.clone(), options, host_embeddings))
    }

    /// Wraps a model already built (e.g. with a LoRA adapter merged in).
    pub fn from_model(
        model: DecoderModel<B>,
        tokenizer: TextTokenizer,
        options: EncoderOptions,
        host_embeddings: Option<HostEmbeddings>,
    ) -> Self {
        Self { model, tokenizer, options, host_embeddings, truncated: Default::default() }
    }

    pub fn dim(&self) -> usize {
        self.model.config.hidden_size
    }

    /// Token ids for one input: template, special tokens, truncation to max_len-1 (as
    /// `options.truncation` says; counted in [`Self::truncated`]), EOS.
    pub fn tokenize(&self, kind: Kind, title: Option<&str>, text: &str) -> Result<Vec<u32>> {
        let parts = self.options.template.parts(kind, title, text);
        let t = self.tokenizer.encode_input(&parts, self.options.max_len, self.options.truncation)?;
        self.truncated[kind as usize].record(t.full_len(), t.cut_tokens);
        Ok(t.ids)
    }

    /// Logs how many inputs of `kind` were cut so far (see [`TruncationStats::log`]).
    pub fn log_truncation(&self, kind: Kind) {
        let what = format!(
            "{} (max {} tokens, {} truncation)",
            match kind {
                Kind::Query => "queries",
                Kind::Passage => "passages",
            },
            self.options.max_len,
            self.options.truncation.name()
        );
        self.truncated[kind as usize].log(&what);
    }

    /// Embeds one batch of token sequences (any lengths, order kept): `[n, hidden]` on the device.
    pub fn embed_ids(&self, seqs: &[Vec<u32>]) -> Tensor<B, 2> {
        embed_with(
            &self.model,
            self.host_embeddings.as_ref(),
            seqs,
            self.tokenizer.eos_id,
            self.options.pooling,
            self.options.normalize,
        )
    }

    /// Embeds and reads back without blocking: the only readback WebGPU allows.
    pub async fn embed_ids_to_vec_async(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let dim = self.dim();
        let data = self
            .embed_ids(seqs)
            .into_data_async()
            .await
            .map_err(|e| crate::error::Error::Other(format!("reading embeddings back from the device: {e:?}")))?;
        let v: Vec<f32> = data.convert::<f32>().to_vec().expect("f32 data");
        Ok(v.chunks(dim).map(|c| c.to_vec()).collect())
    }

    /// Embeds and reads back to the host (blocking; the browser uses `embed_ids` + async readback).
    pub fn embed_ids_to_vec(&self, seqs: &[Vec<u32>]) -> Vec<Vec<f32>> {
        let dim = self.dim();
        let data = self.embed_ids(seqs).into_data();
        let v: Vec<f32> = data.convert::<f32>().to_vec().expect("f32 data");
        v.chunks(dim).map(|c| c.to_vec()).collect()
    }

    /// Embeds token sequences in batches of `batch_size` sorted by length (longest first, so
    /// batches carry little padding), rows back in input order: what `llmql encode` runs.
    /// `on_batch(n)` after each batch of `n` sequences.
    /// On the CPU backend several batches run at once, one per worker thread
    /// ([`crate::model::for_each_batch`]).
    pub fn embed_all(&self, seqs: &[Vec<u32>], batch_size: usize, mut on_batch: impl FnMut(usize)) -> Vec<Vec<f32>> {
        let lengths: Vec<usize> = seqs.iter().map(Vec::len).collect();
        let batches = length_sorted_batches(&lengths, batch_size);
        let (host, pad, pooling, normalize) =
            (self.host_embeddings.as_ref(), self.tokenizer.eos_id, self.options.pooling, self.options.normalize);
        let dim = self.dim();
        let mut out = vec![Vec::new(); seqs.len()];
        let embed = |model: &DecoderModel<B>, batch: &Vec<usize>| -> Vec<f32> {
            let b: Vec<Vec<u32>> = batch.iter().map(|&i| seqs[i].clone()).collect();
            embed_with(model, host, &b, pad, pooling, normalize)
                .into_data()
                .convert::<f32>()
                .to_vec()
                .expect("f32 data")
        };
        crate::model::for_each_batch(&self.model, &batches, embed, |batch, rows| {
            for (row, &i) in rows.chunks(dim).zip(batch) {
                out[i] = row.to_vec();
            }
            on_batch(batch.len());
        });
        out
    }

    /// Embeds texts of one kind; `title` is ignored for queries.
    pub fn encode_texts(&self, kind: Kind, items: &[(Option<&str>, &str)], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let seqs = items.iter().map(|(t, x)| self.tokenize(kind, *t, x)).collect::<Result<Vec<_>>>()?;
        Ok(self.embed_all(&seqs, batch_size, |_| {}))
    }
}
