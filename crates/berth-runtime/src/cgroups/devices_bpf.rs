//! The cgroup v2 device filter: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program assembled by hand
//! from the device rules, loaded with bpf(2) and attached (`BPF_CGROUP_DEVICE`,
//! `BPF_F_ALLOW_MULTI`) to a cgroup2 directory, replacing the filter a previous apply attached.
//!
//! Why by hand: the program is a few instructions per rule, and assembling it here avoids a BPF
//! toolchain and a loader crate. The rules first go through the v1 controller emulator so the
//! program grants exactly what the same rules grant on v1 (runc does the same).
//!
//! Must never attach a filter that allows more than the rules say, and never detach a previous
//! filter before the new one is attached (there is no window without a filter).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use super::devices::{self, DevType, Emulator, ACC_ALL};
use super::CgroupError;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

// Opcodes used (class | op | source).
const LDXW: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE32_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JNE32_X: u8 = 0x5e; // BPF_JMP32 | BPF_JNE | BPF_X
const JEQ32_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// One eBPF instruction, laid out as the kernel's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst in the low nibble, src in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0xf) | ((src & 0xf) << 4),
        off,
        imm,
    }
}

/// Assembles the filter for `rules` (applied in order, after an implicit deny-all, with v1
/// semantics). Registers: r2 = device type, r3 = requested access, r4 = major, r5 = minor.
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    let parsed = devices::parse_all(rules)?;
    Ok(assemble(&Emulator::from_rules(&parsed)))
}

pub(super) fn assemble(emu: &Emulator) -> Vec<Insn> {
    let mut p = vec![
        insn(LDXW, 2, 1, 0, 0),
        insn(AND32_K, 2, 0, 0, 0xffff),
        insn(LDXW, 3, 1, 0, 0),
        insn(RSH32_K, 3, 0, 0, 16),
        insn(LDXW, 4, 1, 4, 0),
        insn(LDXW, 5, 1, 8, 0),
    ];
    let verdict = i32::from(!emu.default_allow);
    for e in &emu.exceptions {
        // Conditions as (opcode, dst, src, imm); each jumps past the block when it fails.
        let mut conds: Vec<(u8, u8, u8, i32)> = Vec::new();
        match e.typ {
            DevType::All => {}
            DevType::Block => conds.push((JNE32_K, 2, 0, BPF_DEVCG_DEV_BLOCK)),
            DevType::Char => conds.push((JNE32_K, 2, 0, BPF_DEVCG_DEV_CHAR)),
        }
        let access_check = e.access != ACC_ALL;
        if let Some(m) = e.major {
            conds.push((JNE32_K, 4, 0, m as i32));
        }
        if let Some(m) = e.minor {
            conds.push((JNE32_K, 5, 0, m as i32));
        }
        let block_len = conds.len() + if access_check { 3 } else { 0 } + 2;
        let emit = |p: &mut Vec<Insn>, start: usize, code: u8, dst: u8, src: u8, imm: i32| {
            let pos = p.len() - start;
            // Offsets are relative to the next instruction; the target is the block's end.
            let off = (block_len - pos - 1) as i16;
            p.push(insn(code, dst, src, off, imm));
        };
        let start = p.len();
        for (code, dst, src, imm) in conds {
            emit(&mut p, start, code, dst, src, imm);
        }
        if access_check {
            p.push(insn(MOV32_X, 1, 3, 0, 0));
            p.push(insn(AND32_K, 1, 0, 0, i32::from(e.access)));
            if emu.default_allow {
                // A deny exception hits when any requested bit is in it.
                emit(&mut p, start, JEQ32_K, 1, 0, 0);
            } else {
                // An allow exception hits when it covers every requested bit.
                emit(&mut p, start, JNE32_X, 1, 3, 0);
            }
        }
        p.push(insn(MOV64_K, 0, 0, 0, verdict));
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(MOV64_K, 0, 0, 0, i32::from(emu.default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    pad: u32,
    prog_attach_flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// bpf(2) with an attribute struct of type `T`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` struct matching the layout the
    // kernel expects for `cmd` (a prefix of `union bpf_attr`); its size is passed so the kernel
    // reads no further, and every pointer inside it points to memory that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn fd_from(rc: libc::c_long) -> std::io::Result<OwnedFd> {
    let fd = i32::try_from(rc).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: bpf(2) returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load(prog: &[Insn], dir: &Path) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"berth_dev");
    let insn_cnt = u32::try_from(prog.len()).map_err(|_| CgroupError::Invalid {
        what: "linux.resources.devices".into(),
        reason: "too many device rules".into(),
    })?;
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(rc) => fd_from(rc).map_err(|source| CgroupError::Bpf {
            op: "load",
            path: dir.to_path_buf(),
            log: String::new(),
            source,
        }),
        Err(source) => {
            // Load again with the verifier log to say why.
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            let _ = bpf(BPF_PROG_LOAD, &mut attr).map(fd_from);
            let end = log.iter().position(|b| *b == 0).unwrap_or(0);
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(CgroupError::Bpf {
                op: "load",
                path: dir.to_path_buf(),
                log: if text.is_empty() {
                    String::new()
                } else {
                    format!(" (verifier: {text})")
                },
                source,
            })
        }
    }
}

/// Ids of the device programs attached directly to the cgroup.
fn attached(cg: &OwnedFd) -> Vec<u32> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    match bpf(BPF_PROG_QUERY, &mut attr) {
        Ok(_) => {
            ids.truncate(attr.prog_cnt.min(64) as usize);
            ids
        }
        Err(_) => Vec::new(),
    }
}

/// Attaches the filter for `rules` to the cgroup2 directory `dir`, then detaches the device
/// programs that were attached there before.
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let prog = program(rules)?;
    let bpf_err = |op, source| CgroupError::Bpf {
        op,
        path: dir.to_path_buf(),
        log: String::new(),
        source,
    };
    let prog_fd = load(&prog, dir)?;
    let cg: OwnedFd = std::fs::File::open(dir)
        .map_err(|source| CgroupError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .into();
    let old = attached(&cg);
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| bpf_err("attach", e))?;
    for id in old {
        let mut get = GetFdAttr {
            prog_id: id,
            ..Default::default()
        };
        let old_fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut get).and_then(fd_from) {
            Ok(fd) => fd,
            // Already gone.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(bpf_err("get-fd-by-id", e)),
        };
        let mut detach = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: old_fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_DETACH, &mut detach) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(bpf_err("detach", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::{ACC_MKNOD, ACC_READ, ACC_WRITE};

    /// Runs the subset of eBPF the assembler emits.
    fn run(p: &[Insn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let mut r = [0u64; 11];
        let ctx = [(access << 16) | typ, major, minor];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i64::from(i.off)) as usize;
                }
            };
            match i.code {
                LDXW => {
                    assert_eq!(src, 1);
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                AND32_K => r[dst] = u64::from(r[dst] as u32 & i.imm as u32),
                RSH32_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                MOV32_X => r[dst] = u64::from(r[src] as u32),
                MOV64_K => r[dst] = i.imm as i64 as u64,
                JNE32_K => jump(r[dst] as u32 != i.imm as u32, &mut pc),
                JNE32_X => jump(r[dst] as u32 != r[src] as u32, &mut pc),
                JEQ32_K => jump(r[dst] as u32 == i.imm as u32, &mut pc),
                EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
        panic!("program did not terminate")
    }

    fn check(json: &str) {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        let emu = Emulator::from_rules(&devices::parse_all(&rules).unwrap());
        let p = program(&rules).unwrap();
        for (typ, t) in [(DevType::Block, 1), (DevType::Char, 2)] {
            for major in [0, 1, 5, 8, 136, 4095] {
                for minor in [0, 1, 3, 5, 9, 1 << 19] {
                    for access in 1..=7u8 {
                        let want = emu.allows(typ, major, minor, access);
                        let got = run(&p, t, u32::from(access), major, minor) == 1;
                        assert_eq!(want, got, "{json}: {typ:?} {major}:{minor} access {access}");
                    }
                }
            }
        }
    }

    #[test]
    fn program_matches_emulator() {
        check(r#"[{"allow":false,"access":"rwm"}]"#);
        check(r#"[{"allow":true,"type":"a"}]"#);
        check(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"r"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"b","access":"m"},
                {"allow":true,"type":"c","major":5,"minor":1,"access":"rw"},
                {"allow":true,"type":"c","major":5,"minor":1,"access":"m"}]"#,
        );
        check(
            r#"[{"allow":true,"type":"a"},
                {"allow":false,"type":"b","major":8,"access":"w"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"},
                {"allow":false,"type":"c","minor":9,"access":"m"}]"#,
        );
    }

    #[test]
    fn program_shape() {
        let rules: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"}]"#)
                .unwrap();
        let p = program(&rules).unwrap();
        // prologue 6 + block (type, access 3, major, minor, mov, exit = 8) + epilogue 2
        assert_eq!(p.len(), 16);
        assert_eq!(p[6], insn(JNE32_K, 2, 0, 7, BPF_DEVCG_DEV_CHAR));
        assert_eq!(p[p.len() - 2], insn(MOV64_K, 0, 0, 0, 0));
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        let _ = (ACC_MKNOD, ACC_READ, ACC_WRITE);
    }
}
