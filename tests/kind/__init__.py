"""Air-gapped kind test bed: see README.md. cluster.KindCluster drives it."""
