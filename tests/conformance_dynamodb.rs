//! The storage conformance suite on the DynamoDB adapter, against the endpoint the test script
//! started (moto's server, single-threaded).

eshtarek_tests::conformance_suite!(eshtarek_tests::stores::dynamodb());
