"""gliner2's boundary architecture ("GLiNER2.5", ``BoundaryExtractor``), torch-free: numpy heads
over the encoder's token states, read from the head's state dict (torch names kept, so an
exported ``heads.npz`` maps one to one). Each module names the gliner2 2.1.0 module it follows.
Served with the shared candidate pool (with or without span content features): entities, entity
attributes, structures and records, relations and classification; refused at load, naming the
setting: the per-query proposer and the other settings ``head.UNSUPPORTED`` lists."""
