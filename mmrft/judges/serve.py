"""`python -m mmrft.judges.serve MODEL_DIR --port 8000 [transformers serve options]`: `transformers serve` (an
OpenAI-compatible chat-completions server) with mmrft's processors registered.

mmrft's tiny models, and real Qwen-VL checkpoints on a machine without torchvision, use a torchvision-free
processor class of mmrft (`mmrft.models.processors`) that `AutoProcessor` finds only after `import mmrft`; plain
`transformers serve` would fall back to the tokenizer and serve the model as text-only (images dropped). The server
loads the model in a process started with "spawn", which re-imports this module as its main module, so the import
below runs there too. Needs the serving extra: `pip install "transformers[serving]"`.
"""

import importlib

importlib.import_module("mmrft")  # registers the processors, here and in the spawned model process

if __name__ == "__main__":
    import sys

    from transformers.cli.transformers import main

    sys.argv = ["transformers", "serve", *sys.argv[1:]]
    main()
