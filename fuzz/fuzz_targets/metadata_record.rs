//! Fuzzes metadata record decoding (what a broker runs on every entry of the metadata log):
//! never a panic, never an allocation beyond the record's bytes, and whatever decodes encodes
//! back to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_controller::MetadataRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = MetadataRecord::decode(data) {
        let again = MetadataRecord::decode(&record.encode()).expect("what decoded re-decodes");
        assert_eq!(again, record);
    }
});
