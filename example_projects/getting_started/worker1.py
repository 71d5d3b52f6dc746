"""README "Getting started": print the CUDA devices each instance sees.

The README's worker imports torch unconditionally; this one also runs where
torch or a GPU is missing (ssmake's local backend runs it on this machine's
Python), and says so.
"""

try:
    import torch
except ImportError:
    torch = None

if torch is None:
    print("-***- torch is not installed here: no CUDA devices available")
elif torch.cuda.device_count() == 0:
    print("-***- No CUDA devices available")
else:
    for i in range(torch.cuda.device_count()):
        print(f"-***- Device {i}: {torch.cuda.get_device_properties(i)}")
