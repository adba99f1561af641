//! Device access rules: parsing `linux.resources.devices` and emulating the v1 devices controller,
//! so that the v2 eBPF filter grants exactly what the same rules would grant on v1.
//!
//! Must never widen access: an unknown device type or access letter is an error, not a wildcard.

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;

/// Access bits, the values the kernel's `bpf_cgroup_dev_ctx` uses.
pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    All,
    Block,
    Char,
}

/// One parsed rule; `None` major/minor is the `*` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub typ: DevType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

impl Rule {
    pub fn parse(r: &LinuxDeviceCgroup) -> Result<Rule, CgroupError> {
        let bad = |reason: &str| CgroupError::DeviceRule {
            rule: r.to_string(),
            reason: reason.to_string(),
        };
        let typ = match r.typ().unwrap_or_default() {
            LinuxDeviceType::A => DevType::All,
            LinuxDeviceType::B => DevType::Block,
            LinuxDeviceType::C | LinuxDeviceType::U => DevType::Char,
            LinuxDeviceType::P => {
                return Err(bad(
                    "fifos are not devices the cgroup controls; use type a, b or c",
                ))
            }
        };
        let num = |v: Option<i64>| -> Result<Option<u32>, CgroupError> {
            match v {
                None => Ok(None),
                Some(n) if n < 0 => Ok(None),
                Some(n) => u32::try_from(n)
                    .map(Some)
                    .map_err(|_| bad("device numbers must fit in 32 bits")),
            }
        };
        let mut access = 0;
        match r.access().as_deref() {
            None | Some("") => access = ACC_ALL,
            Some(s) => {
                for ch in s.chars() {
                    access |= match ch {
                        'r' => ACC_READ,
                        'w' => ACC_WRITE,
                        'm' => ACC_MKNOD,
                        _ => return Err(bad("access may only contain the letters r, w and m")),
                    };
                }
            }
        }
        Ok(Rule {
            allow: r.allow(),
            typ,
            major: num(r.major())?,
            minor: num(r.minor())?,
            access,
        })
    }

    /// The line the v1 `devices.allow`/`devices.deny` files take.
    pub fn v1_line(&self) -> String {
        let t = match self.typ {
            DevType::All => "a",
            DevType::Block => "b",
            DevType::Char => "c",
        };
        let n = |v: Option<u32>| v.map_or_else(|| "*".to_string(), |v| v.to_string());
        let mut acc = String::new();
        if self.access & ACC_READ != 0 {
            acc.push('r');
        }
        if self.access & ACC_WRITE != 0 {
            acc.push('w');
        }
        if self.access & ACC_MKNOD != 0 {
            acc.push('m');
        }
        format!("{t} {}:{} {acc}", n(self.major), n(self.minor))
    }

    fn same_node(&self, o: &Rule) -> bool {
        self.typ == o.typ && self.major == o.major && self.minor == o.minor
    }
}

/// Parses every rule, skipping fifo (`p`) rules: the devices controller never checks fifos, so
/// dropping them grants nothing, and runtimes derive such rules from `linux.devices`.
pub fn parse_all(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, CgroupError> {
    rules
        .iter()
        .filter(|r| r.typ() != Some(LinuxDeviceType::P))
        .map(Rule::parse)
        .collect()
}

/// The state of a v1 devices cgroup after a sequence of writes: a default and the exceptions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emulator {
    pub default_allow: bool,
    /// Rules that invert the default (their `allow` is `!default_allow`).
    pub exceptions: Vec<Rule>,
}

impl Emulator {
    /// A new cgroup starts as "deny everything" here, because the runtime always writes deny "a"
    /// first, as runc does.
    pub fn deny_all() -> Self {
        Emulator {
            default_allow: false,
            exceptions: Vec::new(),
        }
    }

    /// Applies one write the way the kernel's devices controller does.
    pub fn apply(&mut self, r: &Rule) {
        if r.typ == DevType::All {
            self.default_allow = r.allow;
            self.exceptions.clear();
            return;
        }
        if r.allow == self.default_allow {
            // Agrees with the default: punch the access out of a matching exception.
            for e in self.exceptions.iter_mut().filter(|e| e.same_node(r)) {
                e.access &= !r.access;
            }
            self.exceptions.retain(|e| e.access != 0);
        } else if let Some(e) = self.exceptions.iter_mut().find(|e| e.same_node(r)) {
            e.access |= r.access;
        } else {
            self.exceptions.push(*r);
        }
    }

    pub fn from_rules(rules: &[Rule]) -> Self {
        let mut emu = Emulator::deny_all();
        for r in rules {
            emu.apply(r);
        }
        emu
    }

    /// What the kernel's v1 controller would answer for one access (used to test the BPF filter's
    /// logic against the reference semantics).
    #[cfg(test)]
    pub fn allows(&self, typ: DevType, major: u32, minor: u32, access: u8) -> bool {
        let matches = |e: &&Rule| {
            (e.typ == DevType::All || e.typ == typ)
                && e.major.is_none_or(|m| m == major)
                && e.minor.is_none_or(|m| m == minor)
        };
        if self.default_allow {
            // Denied if any deny exception overlaps the requested access.
            !self
                .exceptions
                .iter()
                .filter(matches)
                .any(|e| e.access & access != 0)
        } else {
            // Allowed only if one allow exception covers all of it.
            self.exceptions
                .iter()
                .filter(matches)
                .any(|e| access & !e.access == 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<Rule> {
        let v: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        parse_all(&v).unwrap()
    }

    #[test]
    fn parse_and_v1_lines() {
        let r = rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"b","major":-1,"access":"m"},
                {"allow":true,"type":"u","major":5,"minor":0}]"#,
        );
        let lines: Vec<String> = r.iter().map(Rule::v1_line).collect();
        assert_eq!(lines, ["a *:* rwm", "c 1:3 rwm", "b *:* m", "c 5:0 rwm"]);
        assert!(!r[0].allow);
    }

    #[test]
    fn bad_rules_are_errors() {
        for bad in [
            r#"{"allow":true,"type":"p"}"#,
            r#"{"allow":true,"type":"c","access":"rx"}"#,
            r#"{"allow":true,"type":"c","major":99999999999}"#,
        ] {
            let r: LinuxDeviceCgroup = serde_json::from_str(bad).unwrap();
            assert!(Rule::parse(&r).is_err(), "{bad}");
        }
    }

    #[test]
    fn fifo_rules_are_skipped() {
        let r =
            rules(r#"[{"allow":true,"type":"p","major":1,"minor":1},{"allow":true,"type":"c"}]"#);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].typ, DevType::Char);
    }

    #[test]
    fn emulator_matches_v1_semantics() {
        let emu = Emulator::from_rules(&rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"m"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"rwm"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"w"}]"#,
        ));
        assert!(!emu.default_allow);
        assert!(emu.allows(DevType::Char, 1, 3, ACC_ALL));
        assert!(emu.allows(DevType::Char, 136, 7, ACC_READ | ACC_WRITE));
        assert!(!emu.allows(DevType::Char, 136, 7, ACC_MKNOD));
        assert!(emu.allows(DevType::Char, 1, 5, ACC_READ));
        assert!(!emu.allows(DevType::Char, 1, 5, ACC_WRITE));
        assert!(!emu.allows(DevType::Block, 1, 3, ACC_READ));
        assert_eq!(emu.exceptions.len(), 3);

        let emu = Emulator::from_rules(&rules(
            r#"[{"allow":true,"type":"a"},{"allow":false,"type":"b","major":8,"access":"w"}]"#,
        ));
        assert!(emu.default_allow);
        assert!(emu.allows(DevType::Block, 8, 1, ACC_READ));
        assert!(!emu.allows(DevType::Block, 8, 1, ACC_READ | ACC_WRITE));
        assert!(emu.allows(DevType::Char, 8, 1, ACC_WRITE));
    }
}
