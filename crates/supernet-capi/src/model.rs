//! `sn_model_*`: loading a model into caller storage and querying it. A loaded model is
//! read-only: any number of threads and sessions may use it at once.

use core::ffi::c_char;
use core::fmt::Write;

use supernet_format::{StoredSubnet, SubnetConfig};
use supernet_runtime::Model;

use crate::status::{Failure, SnStatus, status_of};
use crate::text::BufWriter;
use crate::{Out, ptr_ok, session, slice_in, slice_out};

/// Alignment (bytes) required of model storage and session arenas.
pub const SN_STORAGE_ALIGN: usize = 16;
/// Bytes of storage a model handle needs (`sn_model_load`'s `storage`). Fixed for an ABI
/// version; the library checks at build time that its model object fits.
pub const SN_MODEL_STORAGE_BYTES: usize = 2048;
/// Bytes of a stored subnet's name buffer: up to 16 bytes of UTF-8 and a NUL.
pub const SN_NAME_BYTES: usize = 17;
/// Bytes that hold the text form of any config (`sn_model_get_subnet_config`), NUL included.
pub const SN_CONFIG_TEXT_BYTES: usize = 512;

const _: () = assert!(core::mem::size_of::<SnModel>() <= SN_MODEL_STORAGE_BYTES);
const _: () = assert!(core::mem::align_of::<SnModel>() <= SN_STORAGE_ALIGN);
// The longest config text: 64 slots of ks and e ("9, "), 8 depths, the keys and braces.
const _: () = assert!(
    2 * 3 * supernet_format::space::MAX_SLOTS + 3 * supernet_format::space::MAX_STAGES + 32
        <= SN_CONFIG_TEXT_BYTES
);

/// A loaded model (opaque). Lives in the caller's storage; borrows the model bytes.
pub struct SnModel {
    /// `MODEL_TAG ^ address`: tells a loaded model from other memory, and from a copy.
    tag: usize,
    pub(crate) model: Model<'static>,
}

const MODEL_TAG: usize = 0x5e7_0de1_u32 as usize;

impl SnModel {
    fn tag_for(p: *const SnModel) -> usize {
        MODEL_TAG ^ (p as usize)
    }

    /// The model behind a handle, after checking it.
    ///
    /// # Safety
    /// `p` must be NULL or point to readable memory of `SN_MODEL_STORAGE_BYTES`.
    pub(crate) unsafe fn from_handle<'a>(p: *const SnModel) -> Result<&'a SnModel, Failure> {
        ptr_ok(p)?;
        // SAFETY: non-null, aligned, readable by contract; the tag is a plain integer.
        let tag = unsafe { core::ptr::addr_of!((*p).tag).read() };
        if tag != SnModel::tag_for(p) {
            return Err(Failure::BadHandle);
        }
        // SAFETY: the tag says `sn_model_load` initialised this object here.
        Ok(unsafe { &*p })
    }
}

/// What a model is: its format version, input and output shape, stored subnets, costs and
/// the session arena it needs.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SnModelInfo {
    pub format_version_major: u32,
    pub format_version_minor: u32,
    /// Input channels, and the input's height = width.
    pub in_channels: u32,
    pub resolution: u32,
    /// Number of logits a run writes.
    pub classes: u32,
    /// Stages and block slots of the space: a config has `slots` kernel sizes and expand
    /// ratios and `stages` depths.
    pub stages: u32,
    pub slots: u32,
    /// Values per input: `in_channels * resolution * resolution` floats, CHW order.
    pub input_len: usize,
    /// Number of stored subnets (ids and indexes: `sn_model_get_subnet`).
    pub subnet_count: usize,
    /// Arena bytes of a session that can run every subnet of the space.
    pub session_arena_bytes: usize,
    /// Multiply-adds and parameters of the largest and smallest subnets of the space.
    pub largest_macs: u64,
    pub largest_params: u64,
    pub smallest_macs: u64,
    pub smallest_params: u64,
    /// Size of the model bytes.
    pub model_bytes: usize,
}

/// One stored subnet.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SnSubnetInfo {
    /// Its position in the table (`0 .. subnet_count`).
    pub index: usize,
    /// Its id (unique in the model).
    pub id: u32,
    /// Its name, NUL-terminated UTF-8.
    pub name: [c_char; SN_NAME_BYTES],
    /// Held-out accuracy measured by the trainer (fraction); NaN if unknown.
    pub accuracy: f32,
    pub macs: u64,
    pub params: u64,
    /// Expected latency of one run in microseconds, from the artifact (measured by its
    /// writer); 0 if unknown. A session's calibration replaces it (`sn_session_get_latencies`).
    pub latency_us: u32,
    /// Arena bytes of a session that can run this subnet (and every smaller need).
    pub session_arena_bytes: usize,
}

/// Loads a model: validates `bytes` completely (magic, version, checksum, every offset,
/// length and alignment) and writes a handle, placed in `storage`, to `*out_model`.
/// Nothing is copied: the model reads its weights from `bytes` in place.
///
/// - `storage`: at least `SN_MODEL_STORAGE_BYTES` bytes, aligned to `SN_STORAGE_ALIGN`;
///   owned by the caller. It and `bytes` must stay valid and unchanged as long as the
///   model or any session opened on it is used. Reusing the storage (or loading another
///   model into it) ends the model.
/// - `bytes`: the artifact, 4-byte aligned (64 is best), e.g. a memory map, a static array
///   in flash, or a buffer read from a file.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_load(
    storage: *mut core::ffi::c_void,
    storage_len: usize,
    bytes: *const u8,
    bytes_len: usize,
    out_model: *mut *mut SnModel,
) -> SnStatus {
    status_of((|| {
        let out = Out::required(out_model)?;
        let storage = storage.cast::<SnModel>();
        if storage.is_null() {
            return Err(Failure::NullPointer);
        }
        if (storage as usize) % SN_STORAGE_ALIGN != 0 {
            return Err(Failure::Misaligned);
        }
        if storage_len < SN_MODEL_STORAGE_BYTES {
            return Err(Failure::BufferTooSmall {
                what: "model storage (bytes)",
                needed: SN_MODEL_STORAGE_BYTES,
                given: storage_len,
            });
        }
        if bytes.is_null() {
            return Err(Failure::NullPointer);
        }
        // SAFETY: `bytes` is valid for `bytes_len` reads for the model's life (contract).
        let bytes: &'static [u8] = unsafe { slice_in(bytes, bytes_len)? };
        let model = Model::from_bytes(bytes)?;
        let obj = SnModel {
            tag: SnModel::tag_for(storage),
            model,
        };
        // SAFETY: storage is non-null, aligned and large enough (checked above).
        unsafe {
            storage.write(obj);
            out.write(storage);
        }
        Ok(())
    })())
}

/// Validates model bytes as `sn_model_load` does, without loading them, and describes the
/// result: if `message` is non-NULL and `message_len > 0`, a NUL-terminated text is
/// written there in every case ("ok", or what is wrong, e.g. which section or tensor),
/// cut to fit. Returns the status `sn_model_load` would return for these bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_check(
    bytes: *const u8,
    bytes_len: usize,
    message: *mut c_char,
    message_len: usize,
) -> SnStatus {
    let result = (|| {
        if bytes.is_null() {
            return Err(Failure::NullPointer);
        }
        // SAFETY: valid for `bytes_len` reads during the call (contract).
        let bytes = unsafe { slice_in(bytes, bytes_len)? };
        Model::from_bytes(bytes)?;
        Ok(())
    })();
    if !message.is_null() && message_len > 0 {
        // SAFETY: `message` is valid for `message_len` writes (contract); u8 and c_char
        // have the same layout. A length beyond the address space is refused.
        if let Ok(buf) = unsafe { slice_out(message.cast::<u8>(), message_len) } {
            let mut w = BufWriter::new(buf);
            let _ = match &result {
                Ok(()) => w.write_str("ok"),
                Err(f) => write!(w, "{f}"),
            };
            w.finish();
        }
    }
    status_of(result)
}

/// Writes what the model is to `*out`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_get_info(
    model: *const SnModel,
    out: *mut SnModelInfo,
) -> SnStatus {
    status_of((|| {
        // SAFETY: handle contract.
        let m = unsafe { SnModel::from_handle(model)? };
        let out = Out::required(out)?;
        let model = &m.model;
        let space = model.space();
        let (major, minor) = model.artifact().version();
        let largest = model.cost(&SubnetConfig::largest(space));
        let smallest = model.cost(&SubnetConfig::smallest(space));
        let info = SnModelInfo {
            format_version_major: major as u32,
            format_version_minor: minor as u32,
            in_channels: space.in_channels,
            resolution: space.resolution,
            classes: space.classes,
            stages: space.n_stages as u32,
            slots: space.n_slots() as u32,
            input_len: model.input_len(),
            subnet_count: model.subnet_count(),
            session_arena_bytes: session::arena_bytes_for(model, model.max_arena_bytes()),
            largest_macs: largest.macs,
            largest_params: largest.params,
            smallest_macs: smallest.macs,
            smallest_params: smallest.params,
            model_bytes: model.artifact().bytes().len(),
        };
        // SAFETY: out-pointer contract.
        unsafe { out.write(info) };
        Ok(())
    })())
}

fn stored(m: &SnModel, index: usize) -> Result<StoredSubnet<'static>, Failure> {
    m.model
        .subnet(index)
        .ok_or(Failure::Runtime(supernet_runtime::Error::UnknownSubnet {
            id: index.min(u32::MAX as usize) as u32,
        }))
}

/// Writes stored subnet `index` (`0 .. subnet_count`) to `*out`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_get_subnet(
    model: *const SnModel,
    index: usize,
    out: *mut SnSubnetInfo,
) -> SnStatus {
    status_of((|| {
        // SAFETY: handle contract.
        let m = unsafe { SnModel::from_handle(model)? };
        let out = Out::required(out)?;
        let sub = stored(m, index)?;
        let cost = m.model.cost(&sub.config);
        let mut name = [0 as c_char; SN_NAME_BYTES];
        for (d, &b) in name.iter_mut().zip(sub.name.as_bytes()) {
            *d = b as c_char;
        }
        let info = SnSubnetInfo {
            index,
            id: sub.id,
            name,
            accuracy: sub.accuracy,
            macs: cost.macs,
            params: cost.params,
            latency_us: sub.latency_us,
            session_arena_bytes: session::arena_bytes_for(
                &m.model,
                m.model.arena_bytes(&sub.config),
            ),
        };
        // SAFETY: out-pointer contract.
        unsafe { out.write(info) };
        Ok(())
    })())
}

/// Writes the table position of the stored subnet with this `id` to `*out_index`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_find_subnet(
    model: *const SnModel,
    id: u32,
    out_index: *mut usize,
) -> SnStatus {
    status_of((|| {
        // SAFETY: handle contract.
        let m = unsafe { SnModel::from_handle(model)? };
        let out = Out::required(out_index)?;
        let (index, _) = m.model.artifact().subnet_by_id(id).ok_or(Failure::Runtime(
            supernet_runtime::Error::UnknownSubnet { id },
        ))?;
        // SAFETY: out-pointer contract.
        unsafe { out.write(index) };
        Ok(())
    })())
}

/// Writes the config of stored subnet `index` as NUL-terminated text in the original
/// Once-for-All form, `{"ks": [...], "e": [...], "d": [...]}`, to `buf` (`buf_len` bytes;
/// `SN_CONFIG_TEXT_BYTES` always suffice), and its length without the NUL to `*out_len`
/// (may be NULL). A shorter buffer that cannot hold it gives `SN_ERR_BUFFER_TOO_SMALL`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_get_subnet_config(
    model: *const SnModel,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> SnStatus {
    status_of((|| {
        // SAFETY: handle contract.
        let m = unsafe { SnModel::from_handle(model)? };
        let out_len = Out::optional(out_len)?;
        if buf.is_null() {
            return Err(Failure::NullPointer);
        }
        let sub = stored(m, index)?;
        let mut count = crate::text::Counter(0);
        let _ = sub.config.write_json(&mut count);
        if count.0 + 1 > buf_len {
            return Err(Failure::BufferTooSmall {
                what: "config text buffer (bytes)",
                needed: count.0 + 1,
                given: buf_len,
            });
        }
        // SAFETY: valid for `buf_len` writes (contract).
        let buf = unsafe { slice_out(buf.cast::<u8>(), buf_len)? };
        let mut w = BufWriter::new(buf);
        let _ = sub.config.write_json(&mut w);
        let (len, _) = w.finish();
        if let Some(o) = out_len {
            // SAFETY: out-pointer contract.
            unsafe { o.write(len) };
        }
        Ok(())
    })())
}

/// Checks a config text against the model's space and writes the arena bytes a session
/// needs to run it to `*out_session_arena_bytes`. Fails with `SN_ERR_CONFIG` if the text
/// is not a valid config of the space.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_get_config_arena_bytes(
    model: *const SnModel,
    config: *const c_char,
    config_len: usize,
    out_session_arena_bytes: *mut usize,
) -> SnStatus {
    status_of((|| {
        // SAFETY: handle contract.
        let m = unsafe { SnModel::from_handle(model)? };
        let out = Out::required(out_session_arena_bytes)?;
        // SAFETY: text contract.
        let config = unsafe { parse_config(&m.model, config, config_len)? };
        let bytes = session::arena_bytes_for(&m.model, m.model.arena_bytes(&config));
        // SAFETY: out-pointer contract.
        unsafe { out.write(bytes) };
        Ok(())
    })())
}

/// Parses config text (`config_len` bytes, no NUL needed) for `model`.
///
/// # Safety
/// `config` must be valid for `config_len` reads.
pub(crate) unsafe fn parse_config(
    model: &Model<'_>,
    config: *const c_char,
    config_len: usize,
) -> Result<SubnetConfig, Failure> {
    if config.is_null() {
        return Err(Failure::NullPointer);
    }
    // SAFETY: caller's contract.
    let bytes = unsafe { slice_in(config.cast::<u8>(), config_len)? };
    let text = core::str::from_utf8(bytes)
        .map_err(|_| Failure::BadArgument("config text is not UTF-8"))?;
    SubnetConfig::parse(text, model.space())
        .map_err(|e| Failure::Runtime(supernet_runtime::Error::Config(e)))
}

/// Turns raw pixels (`pixels_len` = `input_len` bytes, CHW, 0..255) into the model's
/// input with the preprocessing it was trained with (scale, mean, std per channel),
/// written to `out` (`out_len` >= `input_len` floats, 4-byte aligned).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sn_model_preprocess_u8(
    model: *const SnModel,
    pixels: *const u8,
    pixels_len: usize,
    out: *mut f32,
    out_len: usize,
) -> SnStatus {
    status_of((|| {
        // SAFETY: handle contract.
        let m = unsafe { SnModel::from_handle(model)? };
        let n = m.model.input_len();
        if pixels.is_null() || out.is_null() {
            return Err(Failure::NullPointer);
        }
        if pixels_len != n {
            return Err(Failure::Runtime(supernet_runtime::Error::InputLength {
                expected: n,
                found: pixels_len,
            }));
        }
        if out_len < n {
            return Err(Failure::BufferTooSmall {
                what: "output buffer (floats)",
                needed: n,
                given: out_len,
            });
        }
        // SAFETY: buffer contracts.
        let (pixels, out) = unsafe { (slice_in(pixels, n)?, slice_out(out, n)?) };
        m.model.prep().apply_u8(pixels, out);
        Ok(())
    })())
}
