// Turns off cbor-x's optional native extractor before cbor-x is first imported (see cbor.ts).
process.env.CBOR_NATIVE_ACCELERATION_DISABLED = "true";
