"""Deployment to Foundry Local: the model folder with inference_model.json, the SDK's cache or
the foundry CLI's, and the Foundry backend of the engine."""
