// SPDX-License-Identifier: GPL-2.0
//! Module-local bindings, generated at build time by `scripts/gen-bindings.sh`
//! from the kernel tree the module is built against (never checked in).
//! Types that are not nvme's come from the kernel's `bindings` crate.

/// A module of bindgen output, with the lints that generated code cannot
/// follow allowed, in one place for every generated file.
macro_rules! generated_module {
    ($(#[$doc:meta])* $vis:vis mod $name:ident = $file:literal) => {
        $(#[$doc])*
        #[allow(
            dead_code,
            missing_docs,
            non_camel_case_types,
            non_upper_case_globals,
            non_snake_case,
            improper_ctypes,
            unreachable_pub,
            unsafe_op_in_unsafe_fn,
            clippy::all,
            clippy::undocumented_unsafe_blocks,
            clippy::ptr_as_ptr,
            clippy::ref_as_ptr,
            clippy::as_underscore,
            clippy::cast_lossless
        )]
        $vis mod $name {
            use kernel::bindings::*;
            include!($file);
        }
    };
}

generated_module!(mod generated = "generated/bindings_generated.rs");
pub(crate) use generated::*;

generated_module!(
    /// The socket layer (`rust/sys/net.h`): `struct sock` with its fields, which
    /// the kernel's crate has only as an opaque type, and the socket calls of
    /// `sys::socket`. A different type from `kernel::bindings::sock`: a
    /// `socket`'s `sk` is cast once, in `sys::socket`. Generated with bindgen's
    /// layout tests, so a field this module reads cannot sit elsewhere than in C.
    pub(crate) mod net = "generated/net_generated.rs"
);

// The protocol core's PDU layouts must be the kernel's, field by field.
mod layout {
    use super::generated as b;
    use crate::proto::pdu;
    use core::mem::{offset_of, size_of};

    const _: () = assert!(size_of::<b::nvme_tcp_hdr>() == pdu::HDR_LEN);
    const _: () = assert!(offset_of!(b::nvme_tcp_hdr, plen) == 4);
    const _: () = assert!(size_of::<b::nvme_tcp_icreq_pdu>() == pdu::ICREQ_LEN);
    const _: () = assert!(offset_of!(b::nvme_tcp_icreq_pdu, pfv) == 8);
    const _: () = assert!(offset_of!(b::nvme_tcp_icreq_pdu, hpda) == 10);
    const _: () = assert!(offset_of!(b::nvme_tcp_icreq_pdu, digest) == 11);
    const _: () = assert!(offset_of!(b::nvme_tcp_icreq_pdu, maxr2t) == 12);
    const _: () = assert!(size_of::<b::nvme_tcp_icresp_pdu>() == pdu::ICRESP_LEN);
    const _: () = assert!(offset_of!(b::nvme_tcp_icresp_pdu, cpda) == 10);
    const _: () = assert!(offset_of!(b::nvme_tcp_icresp_pdu, digest) == 11);
    const _: () = assert!(offset_of!(b::nvme_tcp_icresp_pdu, maxdata) == 12);
    const _: () = assert!(size_of::<b::nvme_tcp_cmd_pdu>() == pdu::CMD_PDU_LEN);
    const _: () = assert!(size_of::<b::nvme_tcp_rsp_pdu>() == pdu::RSP_PDU_LEN);
    const _: () = assert!(offset_of!(b::nvme_tcp_rsp_pdu, cqe) == pdu::HDR_LEN);
    const _: () = assert!(size_of::<b::nvme_tcp_data_pdu>() == pdu::DATA_PDU_LEN);
    const _: () = assert!(offset_of!(b::nvme_tcp_data_pdu, command_id) == 8);
    const _: () = assert!(offset_of!(b::nvme_tcp_data_pdu, ttag) == 10);
    const _: () = assert!(offset_of!(b::nvme_tcp_data_pdu, data_offset) == 12);
    const _: () = assert!(offset_of!(b::nvme_tcp_data_pdu, data_length) == 16);
    const _: () = assert!(size_of::<b::nvme_tcp_r2t_pdu>() == pdu::R2T_PDU_LEN);
    const _: () = assert!(offset_of!(b::nvme_tcp_r2t_pdu, r2t_offset) == 12);
    const _: () = assert!(offset_of!(b::nvme_tcp_r2t_pdu, r2t_length) == 16);
    const _: () = assert!(size_of::<b::nvme_tcp_term_pdu>() == pdu::TERM_PDU_LEN);
    const _: () = assert!(offset_of!(b::nvme_tcp_term_pdu, fes) == 8);
    const _: () = assert!(size_of::<b::nvme_completion>() == pdu::CQE_LEN);
    const _: () = assert!(size_of::<b::nvme_command>() == pdu::SQE_LEN);
    const _: () = assert!(b::NVME_TCP_DIGEST_LENGTH as usize == pdu::DIGEST_LEN);
}
