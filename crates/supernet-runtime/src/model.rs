//! A loaded supernet: the validated artifact, borrowed in place, plus the few numbers the
//! executor needs often (computed once at load).

use supernet_format::arch::{self, slot_tensor_base};
use supernet_format::space::MAX_SLOTS;
use supernet_format::{Artifact, Prep, Space, StoredSubnet, SubnetConfig};

use crate::Error;
use crate::plan::Plan;

/// A validated supernet artifact. Read-only after loading: share it freely between
/// threads; each thread runs its own [`crate::Session`].
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    art: Artifact<'a>,
    /// Directory index of each slot's first tensor.
    slot_base: [u16; MAX_SLOTS],
    max_plan: Plan,
}

impl<'a> Model<'a> {
    /// Validates `bytes` (magic, version, checksum, every offset, length and alignment) and
    /// borrows them; weights are never copied. The buffer must be 4-byte aligned.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>, Error> {
        let art = Artifact::parse(bytes)?;
        let space = *art.space();
        let mut slot_base = [0u16; MAX_SLOTS];
        for (i, b) in slot_base.iter_mut().enumerate().take(space.n_slots()) {
            *b = slot_tensor_base(&space, i) as u16;
        }
        Ok(Model {
            art,
            slot_base,
            max_plan: Plan::new(&space, None),
        })
    }

    /// The parsed artifact (space, tensors, stored subnets, metadata).
    pub fn artifact(&self) -> &Artifact<'a> {
        &self.art
    }

    pub fn space(&self) -> &Space {
        self.art.space()
    }

    /// Input preprocessing the model was trained with.
    pub fn prep(&self) -> &Prep {
        self.art.prep()
    }

    /// Number of input values: channels x resolution x resolution (CHW).
    pub fn input_len(&self) -> usize {
        let s = self.space();
        (s.in_channels * s.resolution * s.resolution) as usize
    }

    /// Number of logits.
    pub fn classes(&self) -> usize {
        self.space().classes as usize
    }

    /// Number of stored subnets.
    pub fn subnet_count(&self) -> usize {
        self.art.subnet_count()
    }

    /// Stored subnet by table position.
    pub fn subnet(&self, index: usize) -> Option<StoredSubnet<'a>> {
        self.art.subnet(index)
    }

    /// Arena bytes `config` needs.
    pub fn arena_bytes(&self, config: &SubnetConfig) -> usize {
        Plan::new(self.space(), Some(config)).bytes()
    }

    /// Arena bytes that are enough for every config of the space.
    pub fn max_arena_bytes(&self) -> usize {
        self.max_plan.bytes()
    }

    /// Arena length in `f32` enough for every config.
    pub fn max_arena_len(&self) -> usize {
        self.max_plan.total()
    }

    /// Multiply-adds and parameters of `config`.
    pub fn cost(&self, config: &SubnetConfig) -> arch::Cost {
        arch::cost(self.space(), config)
    }

    /// Checks a config against the space.
    pub fn check_config(&self, config: &SubnetConfig) -> Result<(), Error> {
        config.validate(self.space()).map_err(Error::Config)
    }

    pub(crate) fn slot_base(&self, slot: usize) -> usize {
        self.slot_base[slot] as usize
    }
}
