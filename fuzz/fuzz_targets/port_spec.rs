//! The `-p` / `--expose` / API binding parsers never panic, and whatever parses renders to
//! text that parses back to the same spec.
#![no_main]

use berth_ports::{parse_expose, BindingRequest, PortProto, PublishSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = s.parse::<PublishSpec>() {
        let again: PublishSpec = spec.to_string().parse().expect("canonical form parses");
        assert_eq!(again, spec);
        for (pp, ip, port) in spec.bindings() {
            BindingRequest::parse(pp, &ip, &port).expect("the CLI's own bindings parse");
        }
    }
    let _ = parse_expose(s);
    let _ = s.parse::<PortProto>();
    if let Some((ip, port)) = s.split_once('|') {
        let pp = PortProto {
            port: 80,
            proto: berth_ports::Proto::Tcp,
        };
        let _ = BindingRequest::parse(pp, ip, port);
    }
});
