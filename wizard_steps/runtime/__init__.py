"""Running a converted model: streaming generation through onnxruntime-genai, and the Foundry
Local runtime of the foundry-local-sdk wheel."""
