using TaptPlatform.Cli;
using TaptPlatform.Vision;

NativeHeap.KeepTensorBuffers();
return TaptCli.Run(args);
