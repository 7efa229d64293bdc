//! Fuzzes the `__consumer_offsets` record decoder, which replays whatever the partition holds
//! at start: the input is split into a key and an optional value, and whatever decodes must
//! encode back to a record that decodes to the same thing.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_group::OffsetsRecord;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = usize::from(split).min(rest.len());
    let (key, value) = rest.split_at(at);
    let value = if value.is_empty() { None } else { Some(value) };
    if let Ok(record) = OffsetsRecord::decode(Some(key), value) {
        let (k, v) = record.encode();
        assert_eq!(OffsetsRecord::decode(Some(&k), v.as_deref()).as_ref(), Ok(&record));
    }
});
