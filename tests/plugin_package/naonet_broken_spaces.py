"""A package whose spaces cannot load (a dependency is missing)."""

raise ImportError("naonet_broken_spaces needs the package torch_geometric")
