{
  "variables": {
    "halo_hip_cflags": ["-O2", "-std=c++17", "-ffp-contract=off", "-fexceptions"]
  },
  "targets": [
    {
      "target_name": "halo_hip",
      "sources": [
        "native/binding.cpp",
        "native/gpu_model.cpp",
        "native/device.cpp",
        "native/device_hip.cpp",
        "native/device_cuda.cpp",
        "native/device_emu.cpp",
        "native/pack_g2.cpp",
        "kernels/halo_kernels.cpp",
        "kernels/emu/emu.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native", "kernels"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14", "-std=gnu++20"],
      "cflags_cc": ["<@(halo_hip_cflags)"],
      "libraries": ["-ldl", "-lpthread"]
    }
  ]
}
