//! The poison matrix of issue [4] (docs/poison-matrix.md): one test per covered cell, read site ×
//! position × policy × member, on SimMedium and with real SIGBUS on MappedMedium.
