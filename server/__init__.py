"""The pricing service: gRPC handlers, validation, stores, metrics and the command line."""
