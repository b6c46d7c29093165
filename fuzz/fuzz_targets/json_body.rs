//! JSON request bodies, as every service reads them: into a `serde_json::Value` (poem-openapi
//! bodies) and into GraphQL variables (the gateway), then dropped, on a worker's 2 MiB stack.
//! serde_json's recursion limit (128) is what keeps these bounded; this checks it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;

const WORKER_STACK: usize = 2 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let data = data.to_vec();
    let decode = move || {
        let _ = serde_json::from_slice::<serde_json::Value>(&data);
        let _ = serde_json::from_slice::<async_graphql_value::ConstValue>(&data);
        let _ = serde_json::from_slice::<async_graphql_value::Variables>(&data);
    };
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(decode)
        .expect("a thread starts")
        .join()
        .expect("decoding does not panic");
});
