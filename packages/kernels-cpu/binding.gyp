{
  "variables": {
    "halo_common_cflags": ["-O3", "-std=c++17", "-fexceptions", "-fno-math-errno"]
  },
  "targets": [
    {
      "target_name": "halo_kernels_avx2",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", { "sources": ["native/kernels_avx2.cpp"] }]],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(halo_common_cflags)", "-mavx2", "-mfma", "-mf16c"],
      "cflags": ["-fPIC"]
    },
    {
      "target_name": "halo_kernels_avx512vnni",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", { "sources": ["native/kernels_avx512vnni.cpp"] }]],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(halo_common_cflags)", "-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-Wno-uninitialized", "-Wno-maybe-uninitialized"],
      "cflags": ["-fPIC"]
    },
    {
      "target_name": "halo_kernels_amx",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", { "sources": ["native/kernels_amx.cpp"] }]],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(halo_common_cflags)", "-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni", "-mamx-tile", "-mamx-int8", "-Wno-uninitialized", "-Wno-maybe-uninitialized"],
      "cflags": ["-fPIC"]
    },
    {
      "target_name": "halo_kernels_neon",
      "type": "static_library",
      "conditions": [["target_arch=='arm64'", { "sources": ["native/kernels_neon.cpp"] }]],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(halo_common_cflags)"],
      "cflags": ["-fPIC"]
    },
    {
      "target_name": "halo_kernels_neon_dotprod",
      "type": "static_library",
      "conditions": [["target_arch=='arm64'", { "sources": ["native/kernels_neon_dotprod.cpp"] }]],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["<@(halo_common_cflags)", "-march=armv8.2-a+dotprod"],
      "cflags": ["-fPIC"]
    },
    {
      "target_name": "halo_cpu",
      "sources": ["native/binding.cpp", "native/model.cpp", "native/file_map.cpp", "native/kernels_ref.cpp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++14"],
      "cflags_cc": ["<@(halo_common_cflags)"],
      "conditions": [["target_arch=='x64'", {
        "dependencies": ["halo_kernels_avx2", "halo_kernels_avx512vnni", "halo_kernels_amx"]
      }], ["target_arch=='arm64'", {
        "dependencies": ["halo_kernels_neon", "halo_kernels_neon_dotprod"]
      }]]
    }
  ]
}
