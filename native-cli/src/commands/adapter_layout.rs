//! `--adapter-layout`: how `train` and `ql-train` name the tensors of the PEFT adapter they write
//! (see `llmql_core::lora::AdapterLayout`). Reading never needs it: every command that takes an
//! adapter decides its layout from the file.
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use llmql_core::lora::AdapterLayout;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// PEFT on `AutoModel`, task FEATURE_EXTRACTION: `base_model.model.layers.N...` (Tevatron,
    /// RepLLaMA, LLM-QL stage 2; load with `PeftModel.from_pretrained(AutoModel...)`).
    #[value(alias = "tevatron")]
    AutoModel,
    /// PEFT on `AutoModelForCausalLM`, task CAUSAL_LM: `base_model.model.model.layers.N...`.
    CausalLm,
}

#[derive(Args, Debug, Clone, Default)]
pub struct AdapterLayoutArgs {
    /// With --lora: the layout of the written PEFT adapter, i.e. the Python class it loads on.
    /// Default: auto-model for `train` (what Tevatron and the LLM-QL reference's stage 2 write),
    /// causal-lm for `ql-train` (its product is a causal LM).
    #[arg(long, value_enum)]
    pub adapter_layout: Option<LayoutArg>,
}

impl AdapterLayoutArgs {
    /// The layout asked for, else this command's `default`.
    pub fn layout(&self, default: AdapterLayout) -> AdapterLayout {
        match self.adapter_layout {
            None => default,
            Some(LayoutArg::AutoModel) => AdapterLayout::AutoModel,
            Some(LayoutArg::CausalLm) => AdapterLayout::CausalLm,
        }
    }

    /// Refuses the flag where no adapter is written.
    pub fn check(&self, lora: bool) -> Result<()> {
        if self.adapter_layout.is_some() && !lora {
            bail!("--adapter-layout applies to the adapter of a --lora run; add --lora or drop it");
        }
        Ok(())
    }
}
