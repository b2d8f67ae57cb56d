"""gliner2's boundary architecture ("GLiNER2.5", ``BoundaryExtractor``), torch-free: numpy heads
over the encoder's token states, read from the head's state dict (torch names kept, so an
exported ``heads.npz`` maps one to one). Each module names the gliner2 2.1.0 module it follows.
Served: entities, relations and classification with the shared candidate pool; refused (naming
the key or setting): structures/records, entity attributes, the per-query proposer, span content."""
