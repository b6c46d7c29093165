//! The gateway's GraphQL entry: the nesting guard, then the parser, on a thread with a worker's
//! 2 MiB stack (tokio's default), so input that would overflow a worker aborts here too. The
//! PEG grammar itself stops when the stack runs low, but building the document from its parse
//! tree recurses without a bound: a few thousand nested brackets abort the process unless the
//! guard refuses them first.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The guard itself, compiled from the one source the services use.
#[path = "../../services/common/src/nesting.rs"]
#[allow(dead_code)]
mod nesting;

/// tokio's worker-thread stack.
const WORKER_STACK: usize = 2 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = text.to_owned();
    let parse = move || {
        if !cfg!(feature = "unguarded")
            && nesting::check_graphql(&text, nesting::MAX_GRAPHQL_NESTING).is_err()
        {
            return;
        }
        let _ = async_graphql_parser::parse_query(&text);
    };
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(parse)
        .expect("a thread starts")
        .join()
        .expect("parsing does not panic");
});
