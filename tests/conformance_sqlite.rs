//! The storage conformance suite on the embedded SQLite adapter.

eshtarek_tests::conformance_suite!(eshtarek_tests::stores::sqlite());
