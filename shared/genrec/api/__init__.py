"""genrec's gRPC contract: the .proto files, the modules generated from them at build time
(``codegen``, run by setup.py), and a client of the standard health service (``health``)."""
