//! Learning-rate schedule as transformers' `get_linear_schedule_with_warmup`: linear warmup from 0,
//! then linear decay to 0 at the last step. `step` counts optimizer steps already taken (the first
//! update uses `lr_at(0)`, which is 0 when there is warmup — as in transformers).
#[derive(Debug, Clone, Copy)]
pub struct LinearSchedule {
    pub base_lr: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LinearSchedule {
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let rest = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        self.base_lr * (self.total_steps.saturating_sub(step) as f64 / rest).max(0.0)
    }

    /// Warmup steps from a ratio, rounded up as transformers does (`math.ceil(ratio * total)`).
    pub fn warmup_from_ratio(ratio: f64, total_steps: usize) -> usize {
        (ratio * total_steps as f64).ceil() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        let s = LinearSchedule { base_lr: 1.0, warmup_steps: 2, total_steps: 6 };
        let v: Vec<f64> = (0..7).map(|i| s.lr_at(i)).collect();
        assert_eq!(v, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25, 0.0]);
        assert_eq!(LinearSchedule::warmup_from_ratio(0.1, 25), 3);
    }
}
