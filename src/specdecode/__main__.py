from specdecode.cli import main

if __name__ == "__main__":  # guarded: vLLM and torchrun may re-import the main module
    main()
