//! Fuzzes the decoders of transaction state Sluice reads back: `__transaction_state` records
//! (replayed at start) and transaction markers in control batches. The input is split into a
//! key and an optional value; whatever decodes must encode back to a record that decodes to the
//! same thing. The whole input is also read as a control batch.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_txn::TxnRecord;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_record::read_marker(data);
    let Some((&split, rest)) = data.split_first() else { return };
    let at = usize::from(split).min(rest.len());
    let (key, value) = rest.split_at(at);
    let value = if value.is_empty() { None } else { Some(value) };
    if let Ok(record) = TxnRecord::decode(Some(key), value) {
        let (k, v) = record.encode();
        assert_eq!(TxnRecord::decode(Some(&k), v.as_deref()).as_ref(), Ok(&record));
    }
});
