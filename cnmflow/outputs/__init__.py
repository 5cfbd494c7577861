"""Writers for the files users' tools read: CaImAn hdf5, isxd cell/event sets, previews, metadata."""
