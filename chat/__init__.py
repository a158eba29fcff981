"""`voxlm chat`: a local web page to talk to any VoxLM model, with the Whisper -> LLM cascade beside it.

`voxlm.chat.engine.ChatEngine` loads a model and streams answers with timings; `voxlm.chat.app.build_app` makes the
gradio page and `launch` serves it from this machine only. Nothing is imported here, so that `voxlm` commands start
without torch or gradio. `engine.py` and `app.py` use flat imports only: they travel to Hugging Face Spaces
(`voxlm push --space`).
"""
