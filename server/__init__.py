"""The CodeBeaker gRPC server: config, servicer, interceptors, admission, life cycle."""
