"""gliner2's boundary architecture ("GLiNER2.5", ``BoundaryExtractor``), torch-free: numpy heads
over the encoder's token states, read from the head's state dict (torch names kept, so an
exported ``heads.npz`` maps one to one). Built in steps; each module names the gliner2 2.1.0
module it follows. Not yet served: the engine refuses boundary checkpoints until the entity path
(pool, reranker, decoding) is complete."""
