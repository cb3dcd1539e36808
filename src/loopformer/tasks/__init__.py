"""Tasks: data + model wiring + metric for translation, vision and language modelling."""
