# The crates built for wasm32-wasip2 (adapters and test fixtures); sourced by
# scripts/test.sh and .ci/run. The host's build scripts build them.
guests=(
    wharf-adapter-local-filesystem
    wharf-adapter-aws-s3
    wharf-adapter-azure-blob
    wharf-adapter-gcp-storage
    wharf-adapter-huggingface-hub
    wharf-adapter-mlflow
    wharf-adapter-redis
    wharf-adapter-database
    wharf-fixture-misbehave
    wharf-fixture-flawed
)
