"""CodeBeaker's sandbox layer: language specs, limits, verdicts, and sandboxes.

It never imports grpc; the server translates between protobuf and these types.
"""
