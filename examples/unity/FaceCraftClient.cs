// FaceCraftClient.cs - a Unity client of FaceCraft's gRPC service (Grpc.Net.Client).
//
// Generate the C# stubs from proto/facecraft/v1/facecraft.proto with Grpc.Tools (see README.md):
// they live in the namespace FaceCraft.V1 (the proto's csharp_namespace). Everything FaceCraft
// sends is in its own frame (right-handed, +Y up, the face looking down +Z, +X on the subject's
// left, metres, triangles counter-clockwise from outside, UV origin bottom-left); the
// FaceCraftToUnity helpers below convert to Unity's (left-handed, +Y up, +Z forward, +X right,
// metres, clockwise front faces, UV origin bottom-left).

using System;
using System.Collections.Generic;
using System.IO;
using System.Net.Http;
using System.Threading;
using System.Threading.Tasks;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using UnityEngine;
using UnityEngine.Rendering;
using V1 = FaceCraft.V1;  // an alias: the service class V1.FaceCraft shares the root name

namespace FaceCraftUnity
{
    /// <summary>FaceCraft's frame to Unity's: mirror X (right- to left-handed); Y and Z stay.
    /// A face looking down FaceCraft's +Z (towards its camera) looks down Unity's +Z (forward),
    /// and the subject's left (+X) becomes Unity's -X (a character's left).</summary>
    public static class FaceCraftToUnity
    {
        public static Vector3 Point(float x, float y, float z) => new Vector3(-x, y, z);

        /// <summary>A Unity mesh from FaceCraft's Mesh: vertices split where the UV layout has
        /// seams (Unity needs one UV per vertex), X mirrored, and each triangle's winding
        /// reversed (the mirror turns counter-clockwise-from-outside into what Unity treats as
        /// a back face).</summary>
        public static Mesh ToMesh(V1.Mesh m, string name = "FaceCraftFace")
        {
            if (m.Triangles.Count == 0)
                throw new ArgumentException("the mesh has no topology: request it without omit_topology, " +
                                            "or fill it from GetModelInfo(include_topology = true)");
            bool hasNormals = m.Normals.Count == m.Vertices.Count;
            var corner = new Dictionary<long, int>();  // (vertex, uv) pair -> Unity vertex
            var positions = new List<Vector3>();
            var normals = new List<Vector3>();
            var uvs = new List<Vector2>();
            var indices = new int[m.Triangles.Count];
            for (int i = 0; i < m.Triangles.Count; i++)
            {
                int v = (int)m.Triangles[i], t = (int)m.UvTriangles[i];
                long key = ((long)v << 32) | (uint)t;
                if (!corner.TryGetValue(key, out int u))
                {
                    u = positions.Count;
                    corner[key] = u;
                    positions.Add(Point(m.Vertices[3 * v], m.Vertices[3 * v + 1], m.Vertices[3 * v + 2]));
                    if (hasNormals)
                        normals.Add(Point(m.Normals[3 * v], m.Normals[3 * v + 1], m.Normals[3 * v + 2]));
                    uvs.Add(new Vector2(m.Uvs[2 * t], m.Uvs[2 * t + 1]));  // both bottom-left origin
                }
                indices[i] = u;
            }
            for (int f = 0; f < indices.Length; f += 3)  // a, b, c -> a, c, b
                (indices[f + 1], indices[f + 2]) = (indices[f + 2], indices[f + 1]);
            var mesh = new Mesh { name = name, indexFormat = IndexFormat.UInt32 };
            mesh.SetVertices(positions);
            mesh.SetUVs(0, uvs);
            mesh.SetTriangles(indices, 0);
            if (hasNormals) mesh.SetNormals(normals); else mesh.RecalculateNormals();
            mesh.RecalculateBounds();
            return mesh;
        }

        /// <summary>The head's rotation: FaceCraft's R maps the model's axes into its world;
        /// Unity's rotation maps the mesh's forward (+Z) and up (+Y) to the same directions,
        /// mirrored.</summary>
        public static Quaternion Rotation(V1.Pose p)
        {
            var r = p.Rotation;  // row-major 3x3, column k = model axis k in the world
            Vector3 forward = Point(r[2], r[5], r[8]);
            Vector3 up = Point(r[1], r[4], r[7]);
            return Quaternion.LookRotation(forward, up);
        }

        /// <summary>The head's translation in metres (FaceCraft's camera sits at
        /// (0, 0, ModelInfo.camera.camera_distance) looking down -Z, in Unity too).</summary>
        public static Vector3 Translation(V1.Pose p) => Point(p.Translation[0], p.Translation[1], p.Translation[2]);

        /// <summary>The PNG texture as an sRGB Texture2D (the colours are sRGB-encoded).</summary>
        public static Texture2D Texture(V1.Texture t)
        {
            var tex = new Texture2D(2, 2, TextureFormat.RGBA32, mipChain: true, linear: false);
            if (!tex.LoadImage(t.Png.ToByteArray()))
                throw new InvalidDataException("the texture is not a readable PNG");
            tex.wrapMode = TextureWrapMode.Clamp;
            return tex;
        }
    }

    /// <summary>A connection to a FaceCraft server. Calls are async: never block the main
    /// thread on them.</summary>
    public sealed class FaceCraftConnection : IDisposable
    {
        readonly GrpcChannel channel;
        readonly V1.FaceCraft.FaceCraftClient client;
        readonly Metadata headers = new Metadata();

        /// <param name="address">e.g. "http://127.0.0.1:50051" or "https://faces.example:443"</param>
        /// <param name="httpHandler">an HTTP/2 handler; Unity's own networking speaks only
        /// HTTP/1.1, so pass Cysharp's YetAnotherHttpHandler { Http2Only = true } (see README)</param>
        /// <param name="token">the server's bearer token, or null</param>
        public FaceCraftConnection(string address, HttpMessageHandler httpHandler, string token = null)
        {
            channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
            {
                HttpHandler = httpHandler,
                MaxReceiveMessageSize = 64 * 1024 * 1024,  // a textured mesh is a few MiB
                MaxSendMessageSize = 64 * 1024 * 1024,
                DisposeHttpClient = true,
            });
            client = new V1.FaceCraft.FaceCraftClient(channel);
            if (!string.IsNullOrEmpty(token)) headers.Add("authorization", $"Bearer {token}");
        }

        public async Task<V1.ModelInfo> GetModelInfoAsync(bool includeTopology = false,
                                                          CancellationToken cancel = default)
        {
            return await client.GetModelInfoAsync(new V1.GetModelInfoRequest { IncludeTopology = includeTopology },
                                                  headers, DateTime.UtcNow.AddSeconds(10), cancel);
        }

        /// <summary>Reconstruct the largest face of a photo (the file's bytes: JPEG, PNG, ...).
        /// Throws RpcException: StatusCode.FailedPrecondition when there is no face,
        /// InvalidArgument for an unusable photo, ResourceExhausted when it is too large.</summary>
        public async Task<V1.ReconstructResponse> ReconstructAsync(byte[] photo, uint textureSize = 1024,
                                                                   bool allFaces = false,
                                                                   CancellationToken cancel = default)
        {
            var request = new V1.ReconstructRequest
            {
                Photo = ByteString.CopyFrom(photo),
                Options = new V1.ReconstructOptions
                {
                    Faces = allFaces ? V1.FaceSelection.All : V1.FaceSelection.Largest,
                    Texture = true,
                    TextureSize = textureSize,
                },
            };
            return await client.ReconstructAsync(request, headers, DateTime.UtcNow.AddSeconds(60), cancel);
        }

        public void Dispose() => channel.Dispose();
    }

    /// <summary>Drop on a GameObject with a MeshFilter and MeshRenderer: on Start it sends
    /// photoPath to the server and shows the reconstructed, textured head, posed as in the
    /// photo relative to a camera at (0, 0, camera_distance) looking down -Z.</summary>
    [RequireComponent(typeof(MeshFilter), typeof(MeshRenderer))]
    public class FaceCraftClient : MonoBehaviour
    {
        public string serverAddress = "http://127.0.0.1:50051";
        public string photoPath = "photo.jpg";
        public string token = "";
        public uint textureSize = 1024;
        public bool applyPose = true;

        async void Start()
        {
#if FACECRAFT_YAHA  // Scripting Define Symbol: set it once YetAnotherHttpHandler is installed
            HttpMessageHandler handler = new Cysharp.Net.Http.YetAnotherHttpHandler { Http2Only = true };
#else  // HTTP/2 only where the runtime's handler has it (an editor on .NET, not Mono players)
            HttpMessageHandler handler = new HttpClientHandler();
#endif
            using var connection = new FaceCraftConnection(serverAddress, handler, token);
            try
            {
                var info = await connection.GetModelInfoAsync();
                Debug.Log($"FaceCraft {info.ServerVersion}: {info.Package.Name} {info.Package.Version}, " +
                          $"{info.FaceModel.NumVertices} vertices");
                var response = await connection.ReconstructAsync(File.ReadAllBytes(photoPath), textureSize);
                var face = response.Faces[0];  // largest first; never empty
                GetComponent<MeshFilter>().mesh = FaceCraftToUnity.ToMesh(face.Mesh);
                GetComponent<MeshRenderer>().material.mainTexture = FaceCraftToUnity.Texture(face.Texture);
                if (applyPose)
                    transform.SetPositionAndRotation(FaceCraftToUnity.Translation(face.Pose),
                                                     FaceCraftToUnity.Rotation(face.Pose));
                // face.Coefficients.Expression[k] is the weight of info.FaceModel.ExpressionNames[k]
                // (ARKit names for the starter model): SkinnedMeshRenderer.SetBlendShapeWeight
                // takes it x 100 on a rig with the same blendshape names.
                Debug.Log($"face score {face.Detection.Score:F3}, request {response.RequestId}");
            }
            catch (RpcException e)
            {
                Debug.LogError($"FaceCraft: {e.StatusCode}: {e.Status.Detail}");
            }
        }
    }
}
