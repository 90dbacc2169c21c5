//! The settings both training stages share ([`TrainSettings`]: optimisation, schedule, batching,
//! seeding, logging, saving, LoRA, gradient checkpointing), checked in one place
//! ([`TrainSettings::validate`]). The names follow transformers' `TrainingArguments`, as the
//! reference implementation's command lines pass them.
use crate::lora::LoraConfig;
use crate::weights::StoredDtype;
use std::path::Path;

/// A training setting out of its range: the field (as [`TrainSettings`] or a stage's config names
/// it) and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidSetting {
    pub field: &'static str,
    pub message: String,
}

impl InvalidSetting {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

impl From<InvalidSetting> for crate::error::Error {
    fn from(e: InvalidSetting) -> Self {
        crate::error::Error::Other(format!("invalid training setting {e}"))
    }
}

/// Learning-rate warmup: a fraction of the total steps (rounded up, as transformers) or a count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Warmup {
    Ratio(f64),
    Steps(usize),
}

impl Warmup {
    /// Warmup steps of a run of `total_steps`.
    pub fn steps(self, total_steps: usize) -> usize {
        match self {
            Warmup::Ratio(r) => super::schedule::LinearSchedule::warmup_from_ratio(r, total_steps),
            Warmup::Steps(n) => n,
        }
    }
}

/// What both stages' training loops take ([`super::trainer::train`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Peak learning rate of the linear schedule.
    pub learning_rate: f64,
    pub num_train_epochs: usize,
    /// Stop after this many optimizer steps (overrides the epoch count, as in the HF Trainer).
    pub max_steps: Option<usize>,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub warmup: Warmup,
    /// Global-norm gradient clipping; `None` disables it.
    pub max_grad_norm: Option<f64>,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Seeds the data order, the per-example randomness and the backend RNG of every step.
    pub seed: u64,
    /// A log entry every this many steps (and at the last one).
    pub logging_steps: usize,
    /// A checkpoint every this many steps (0: only the last one).
    pub save_steps: usize,
    /// Keep only the newest this many checkpoints of the run.
    pub save_total_limit: Option<usize>,
    /// Dtype of saved weights.
    pub save_dtype: StoredDtype,
    /// Set when the model carries LoRA adapters (attached by the caller with
    /// [`crate::lora::attach_lora`]): checkpoints then also hold the PEFT adapter, and a resume
    /// restores the adapter onto the frozen base.
    pub lora: Option<LoraConfig>,
    /// Gradient checkpointing per decoder layer ([`super::grad_checkpoint`]).
    pub grad_checkpoint: bool,
}

impl TrainSettings {
    /// Stage 1's defaults (the reference implementation's QL recipe).
    pub fn stage1() -> Self {
        Self {
            learning_rate: 1e-5,
            num_train_epochs: 2,
            max_steps: None,
            per_device_train_batch_size: 8,
            gradient_accumulation_steps: 1,
            warmup: Warmup::Ratio(0.1),
            max_grad_norm: Some(1.0),
            weight_decay: 0.0,
            seed: 42,
            logging_steps: 10,
            save_steps: 500,
            save_total_limit: None,
            save_dtype: StoredDtype::F32,
            lora: None,
            grad_checkpoint: false,
        }
    }

    /// Stage 2's defaults (the reference implementation's contrastive recipe, Tevatron's names).
    pub fn stage2() -> Self {
        Self {
            learning_rate: 1e-4,
            num_train_epochs: 1,
            per_device_train_batch_size: 4,
            warmup: Warmup::Steps(100),
            ..Self::stage1()
        }
    }

    /// Checks every value before a step is taken.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !self.learning_rate.is_finite() || self.learning_rate < 0.0 {
            return Err(InvalidSetting::new(
                "learning_rate",
                format!("{} is not a finite non-negative number", self.learning_rate),
            ));
        }
        if self.per_device_train_batch_size == 0 {
            return Err(InvalidSetting::new("per_device_train_batch_size", "must be at least 1"));
        }
        if self.gradient_accumulation_steps == 0 {
            return Err(InvalidSetting::new("gradient_accumulation_steps", "must be at least 1"));
        }
        if self.max_steps == Some(0) {
            return Err(InvalidSetting::new("max_steps", "must be at least 1"));
        }
        match self.warmup {
            Warmup::Ratio(r) if !(0.0..=1.0).contains(&r) => {
                return Err(InvalidSetting::new("warmup_ratio", format!("{r} is not in [0, 1]")));
            }
            _ => {}
        }
        if let Some(n) = self.max_grad_norm {
            if !n.is_finite() || n <= 0.0 {
                return Err(InvalidSetting::new("max_grad_norm", format!("{n} is not a finite positive number")));
            }
        }
        if !self.weight_decay.is_finite() || self.weight_decay < 0.0 {
            return Err(InvalidSetting::new(
                "weight_decay",
                format!("{} is not a finite non-negative number", self.weight_decay),
            ));
        }
        if let Some(lc) = &self.lora {
            lc.validate(Path::new("LoRA settings")).map_err(|e| InvalidSetting::new("lora", e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_field() {
        assert_eq!(TrainSettings::stage1().validate(), Ok(()));
        assert_eq!(TrainSettings::stage2().validate(), Ok(()));
        let field = |s: TrainSettings| s.validate().unwrap_err().field;
        assert_eq!(field(TrainSettings { learning_rate: f64::NAN, ..TrainSettings::stage1() }), "learning_rate");
        assert_eq!(
            field(TrainSettings { per_device_train_batch_size: 0, ..TrainSettings::stage1() }),
            "per_device_train_batch_size"
        );
        assert_eq!(
            field(TrainSettings { gradient_accumulation_steps: 0, ..TrainSettings::stage2() }),
            "gradient_accumulation_steps"
        );
        assert_eq!(field(TrainSettings { warmup: Warmup::Ratio(1.5), ..TrainSettings::stage1() }), "warmup_ratio");
        assert_eq!(field(TrainSettings { max_grad_norm: Some(-1.0), ..TrainSettings::stage1() }), "max_grad_norm");
        let lora = LoraConfig { r: 0, ..LoraConfig::default() };
        let e = TrainSettings { lora: Some(lora), ..TrainSettings::stage2() }.validate().unwrap_err();
        assert!(e.field == "lora" && e.message.contains("field `r`"), "{e}");
        assert_eq!(Warmup::Ratio(0.1).steps(25), 3);
        assert_eq!(Warmup::Steps(7).steps(25), 7);
    }
}
